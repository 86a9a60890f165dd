import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import type { Config } from "../config/index.js";

/** One supervised process of the local cluster. */
export type DevProcessSpec = { name: string; command: string; env: Record<string, string> };

/**
 * The processes `npm start` runs: 3 chat-nodes (ports 3001-3003, internal gRPC 7001-7003), the
 * gateway, presence, inbox worker, the Kafka mirror (only when KAFKA_BROKERS is set) and the web
 * server. Ports derive from the configured base ports.
 */
export function devProcesses(config: Config): DevProcessSpec[] {
  const nodes = [0, 1, 2].map((i) => ({
    name: `node-${i + 1}`,
    command: "chat-node",
    env: {
      CHAT_NODE_ID: `node-${i + 1}`,
      CHAT_NODE_PORT: String(config.nodePort + i),
      CHAT_NODE_GRPC_PORT: String(config.nodeGrpcPort + i),
    },
  }));
  return [
    ...nodes,
    { name: "gateway", command: "gateway", env: {} },
    { name: "presence", command: "presence", env: {} },
    { name: "inbox", command: "inbox-worker", env: {} },
    ...(config.kafkaBrokers.length > 0 ? [{ name: "mirror", command: "kafka-mirror", env: {} }] : []),
    { name: "web", command: "web", env: {} },
  ];
}

const COLORS = [36, 32, 33, 35, 34, 96, 92, 93, 95];
const LEVELS: Record<number, string> = { 10: "trace", 20: "debug", 30: "info", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const HIDDEN = new Set(["level", "time", "pid", "hostname", "name", "msg"]);

/** A pino JSON line as `12:00:01 [node-1] info chat-node listening port=3001`; other lines as they are. */
export function formatLogLine(name: string, line: string, color: number | null): string {
  const tag = color === null ? `[${name}]` : `\u001b[${color}m[${name}]\u001b[0m`;
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
    if (typeof record !== "object" || record === null) throw new Error("not a record");
  } catch {
    return `${tag} ${line}`;
  }
  const time = typeof record.time === "number" ? new Date(record.time).toISOString().slice(11, 19) : "";
  const fields = Object.entries(record)
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : String(v)}`)
    .join(" ");
  return `${time} ${tag} ${LEVELS[record.level as number] ?? record.level} ${record.msg ?? ""} ${fields}`.trimEnd();
}

/**
 * Runs the local cluster: starts every process with prefixed, readable logs; restarts one that
 * crashes (after 1 s, at most 5 times a minute); on stop() sends SIGTERM to all and waits for them.
 */
export function superviseDevCluster(config: Config, options: { root: string; tty: boolean; out: (line: string) => void }) {
  const children = new Map<string, ChildProcess>();
  const restarts = new Map<string, number[]>();
  let stopping = false;
  const specs = devProcesses(config);

  const launch = (spec: DevProcessSpec, index: number) => {
    const child = spawn(process.execPath, ["--import", "tsx", `cmd/${spec.command}/main.ts`], {
      cwd: options.root,
      env: { ...process.env, ...spec.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.set(spec.name, child);
    const color = options.tty ? COLORS[index % COLORS.length]! : null;
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on("line", (line) => options.out(formatLogLine(spec.name, line, color)));
    }
    child.once("exit", (code, signal) => {
      children.delete(spec.name);
      if (stopping) return;
      const now = Date.now();
      const recent = (restarts.get(spec.name) ?? []).filter((t) => now - t < 60_000);
      options.out(formatLogLine("dev", `${spec.name} exited (${code ?? signal}); ${recent.length < 5 ? "restarting in 1 s" : "giving up after 5 restarts in a minute"}`, null));
      if (recent.length >= 5) return;
      restarts.set(spec.name, [...recent, now]);
      setTimeout(() => !stopping && launch(spec, index), 1_000);
    });
  };

  specs.forEach(launch);
  return {
    names: specs.map((s) => s.name),
    /** SIGTERM to every child; SIGKILL to those still running after `graceMs`. */
    async stop(graceMs = 15_000): Promise<void> {
      stopping = true;
      const waiting = [...children.values()].map((c) => new Promise<void>((resolve) => {
        if (c.exitCode !== null || c.signalCode !== null) return resolve();
        c.once("exit", () => resolve());
        c.kill("SIGTERM");
      }));
      const timer = setTimeout(() => { for (const c of children.values()) c.kill("SIGKILL"); }, graceMs);
      await Promise.all(waiting);
      clearTimeout(timer);
    },
  };
}
