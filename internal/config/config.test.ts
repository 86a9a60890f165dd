import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { ConfigError, configVariables, loadConfig } from "./index.js";

test("defaults load with an empty environment", () => {
  const config = loadConfig({});
  assert.equal(config.nodePort, 3001);
  assert.equal(config.gatewayPort, 4000);
  assert.deepEqual(config.kafkaBrokers, []);
  assert.equal(config.encryptionEnabled, false);
});

test("bad values are one clear error naming every variable", () => {
  assert.throws(
    () => loadConfig({ CHAT_NODE_PORT: "99999", DATABASE_URL: "not a url", LOG_LEVEL: "loud" }),
    (e: unknown) => e instanceof ConfigError && /CHAT_NODE_PORT/.test(e.message) && /DATABASE_URL/.test(e.message) && /LOG_LEVEL/.test(e.message),
  );
  assert.throws(() => loadConfig({ JWT_SECRET: "short" }), /JWT_SECRET/);
  assert.throws(() => loadConfig({ NODE_ENV: "production" }), /example secret/);
  assert.throws(() => loadConfig({ CHAT_CLUSTER_HEARTBEAT_MS: "2000", CHAT_CLUSTER_LEASE_TTL_MS: "3000" }), /HEARTBEAT/);
});

test("unknown CHAT_* variables are reported, others ignored", () => {
  const config = loadConfig({ CHAT_NODE_PROT: "1", HOME: "/root" });
  assert.deepEqual(config.unknownVariables, ["CHAT_NODE_PROT"]);
});

test(".env.example documents exactly the variables the schema reads", () => {
  const text = readFileSync(new URL("../../.env.example", import.meta.url), "utf8");
  const documented = new Set([...text.matchAll(/^([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]));
  assert.deepEqual([...configVariables].filter((v) => !documented.has(v)), [], "missing from .env.example");
  assert.deepEqual([...documented].filter((v) => !configVariables.includes(v!)), [], "in .env.example but not read");
});
