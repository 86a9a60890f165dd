import assert from "node:assert/strict";
import { test } from "node:test";
import { loadConfig } from "../config/index.js";
import { devProcesses, formatLogLine } from "./index.js";

test("npm start runs 3 chat-nodes on consecutive ports, the services, and the mirror only with Kafka", () => {
  const without = devProcesses(loadConfig({}));
  assert.deepEqual(without.map((p) => p.name), ["node-1", "node-2", "node-3", "gateway", "presence", "inbox", "web"]);
  assert.deepEqual(without.slice(0, 3).map((p) => p.env.CHAT_NODE_PORT), ["3001", "3002", "3003"]);
  assert.deepEqual(without.slice(0, 3).map((p) => p.env.CHAT_NODE_GRPC_PORT), ["7001", "7002", "7003"]);
  const withKafka = devProcesses(loadConfig({ KAFKA_BROKERS: "localhost:19092" }));
  assert.ok(withKafka.some((p) => p.command === "kafka-mirror"));
});

test("pino lines become short readable lines; other lines pass through", () => {
  const line = JSON.stringify({ level: 30, time: Date.UTC(2026, 0, 1, 12, 0, 1), pid: 1, name: "chat-node", msg: "listening", port: 3001 });
  assert.equal(formatLogLine("node-1", line, null), "12:00:01 [node-1] info listening port=3001");
  assert.equal(formatLogLine("web", "plain text", null), "[web] plain text");
  assert.match(formatLogLine("gw", JSON.stringify({ level: 50, msg: "boom", err: { message: "x" } }), null), /ERROR boom err=\{"message":"x"\}/);
});
