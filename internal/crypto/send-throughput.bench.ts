/**
 * Cost of encryption at rest on send throughput: one chat-node process (cmd/chat-node), the same database,
 * rounds alternating CHAT_ENCRYPTION_ENABLED=false/true, each sending `BENCH_MESSAGES` messages
 * with `BENCH_CONCURRENCY` in flight over Connect. Also a micro-benchmark of seal+open.
 *   node --import tsx internal/crypto/send-throughput.bench.ts
 */
import { randomBytes } from "node:crypto";
import { ConversationKind } from "../gen/chat/v1/common_pb.js";
import { spawn } from "node:child_process";
import * as net from "node:net";
import { bodyAad } from "../actor/index.js";
import { createMessageCodec } from "./message-codec.js";
import { createTestEnv, registerUser } from "../../test/support/index.js";

const messages = Number(process.env.BENCH_MESSAGES ?? 3000);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);
const key = `base64:${randomBytes(32).toString("base64")}`;

const codec = createMessageCodec({ encryptionEnabled: true, keyring: { keys: new Map([[1, randomBytes(32)]]), activeVersion: 1 } });
const text = "x".repeat(200);
const aad = bodyAad(crypto.randomUUID(), crypto.randomUUID());
let started = performance.now();
for (let i = 0; i < 100_000; i++) codec.open(codec.seal(text, aad), aad);
console.log(`seal+open of a 200-byte body: ${((performance.now() - started) * 1000 / 100_000).toFixed(2)} µs`);

const env = await createTestEnv();
const results: Record<string, number[]> = { off: [], on: [] };
for (const mode of ["off", "on", "off", "on"] as const) {
  const port = await new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => { const p = (probe.address() as net.AddressInfo).port; probe.close(() => resolve(p)); });
  });
  const node = spawn(process.execPath, ["--import", "tsx", "cmd/chat-node/main.ts"], {
    stdio: "inherit",
    env: {
      ...process.env, LOG_LEVEL: "error", DATABASE_URL: env.databaseUrl, CHAT_REDIS_PREFIX: env.redisPrefix, CHAT_NODE_PORT: String(port), CHAT_NODE_GRPC_PORT: "0",
      CHAT_ENCRYPTION_ENABLED: mode === "on" ? "true" : "false", CHAT_MESSAGE_KEY: key, CHAT_RATELIMIT_ENABLED: "false", CHAT_NODE_ID: `bench-${mode}-${Date.now()}`,
    },
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (await fetch(`${base}/health`).then((r) => r.ok, () => false)) break;
    if (i > 300) throw new Error("chat-node did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
  const users = await Promise.all(Array.from({ length: 4 }, () => registerUser(base, "b")));
  const conversations = await Promise.all(Array.from({ length: 16 }, (_, i) => users[i % 4]!.api.conversations
    .createConversation({ kind: ConversationKind.GROUP, title: `b${i}`, memberIds: users.map((u) => u.id).filter((id) => id !== users[i % 4]!.id) })
    .then((r) => r.conversation!.id)));
  let next = 0;
  started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < messages) {
      const i = next++;
      await users[i % 4]!.api.messages.sendMessage({ conversationId: conversations[i % 16]!, body: `${text} ${i}` });
    }
  }));
  const perSecond = messages / ((performance.now() - started) / 1000);
  results[mode]!.push(perSecond);
  console.log(`encryption ${mode}: ${perSecond.toFixed(0)} sends/s`);
  node.kill("SIGTERM");
  await new Promise((r) => node.once("exit", r));
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log(`mean off ${mean(results.off!).toFixed(0)} sends/s, on ${mean(results.on!).toFixed(0)} sends/s, cost ${((1 - mean(results.on!) / mean(results.off!)) * 100).toFixed(1)}%`);
await env.close();
process.exit(0);
