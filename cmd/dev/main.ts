import { resolve } from "node:path";
import { superviseDevCluster } from "../../internal/app/index.js";
import { loadConfig } from "../../internal/config/index.js";

/** `npm start`: the whole local cluster under one supervisor; Ctrl-C stops it cleanly. */
const config = loadConfig();
const cluster = superviseDevCluster(config, {
  root: resolve(import.meta.dirname, "../.."),
  tty: process.stdout.isTTY === true,
  out: (line) => process.stdout.write(`${line}\n`),
});
process.stdout.write(`dev: started ${cluster.names.join(", ")}\n`);
process.stdout.write(`dev: open http://localhost:${config.webPort} (API http://localhost:${config.nodePort}, WebSocket ws://localhost:${config.gatewayPort})\n`);
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  process.stdout.write("dev: stopping the cluster\n");
  void cluster.stop().then(() => process.exit(0));
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
