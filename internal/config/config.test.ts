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

test("a .env file in the working directory is read under the real environment", async () => {
  const { mkdtempSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const dir = mkdtempSync(`${tmpdir()}/chat-config-`);
  writeFileSync(`${dir}/.env`, "CHAT_NODE_PORT=3999\nCHAT_GATEWAY_PORT=4999\n# comment\n");
  const cwd = process.cwd();
  const saved = process.env.CHAT_GATEWAY_PORT;
  process.chdir(dir);
  process.env.CHAT_GATEWAY_PORT = "4111";
  try {
    const config = loadConfig();
    assert.equal(config.nodePort, 3999);
    assert.equal(config.gatewayPort, 4111, "the environment wins over .env");
  } finally {
    process.chdir(cwd);
    if (saved === undefined) delete process.env.CHAT_GATEWAY_PORT;
    else process.env.CHAT_GATEWAY_PORT = saved;
  }
});
