import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { WebSocket } from "ws";
import { ConversationKind } from "../internal/gen/chat/v1/common_pb.js";
import { createTestEnv, registerUser, startChatService, type ServiceProcess, type TestEnv } from "./support/index.js";

let env: TestEnv;
const services: ServiceProcess[] = [];
const ROOT = new URL("../", import.meta.url).pathname;
const logOf = (s: ServiceProcess) => readFileSync(`${ROOT}test-results/logs/${s.name}.log`, "utf8");

before(async () => {
  env = await createTestEnv();
  const suffix = Date.now().toString(36);
  services.push(await startChatService(env, "chat-node", { name: `hygiene-node-${suffix}`, extra: { LOG_LEVEL: "trace" } }));
  services.push(await startChatService(env, "gateway", { name: `hygiene-gateway-${suffix}`, extra: { LOG_LEVEL: "trace", CHAT_GATEWAY_API_URL: services[0]!.url } }));
});
after(async () => {
  await Promise.all(services.map((s) => s.stop(3_000)));
  await env?.close();
});

test("message bodies, passwords and tokens never reach the logs, even at trace level and on errors", async () => {
  const secret = `secret-body-${Date.now().toString(36)}`;
  const password = `pw-${Date.now().toString(36)}-long`;
  const res = await fetch(`${services[0]!.url}/api/auth/register`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username: `hyg${Date.now().toString(36)}`, password }),
  });
  const { token } = (await res.json()) as { token: string };
  const other = await registerUser(services[0]!.url, "hyg");
  const api = (await import("./support/index.js")).apiClients(services[0]!.url, token);
  const conversation = (await api.conversations.createConversation({ kind: ConversationKind.DIRECT, memberIds: [other.id] })).conversation!;
  await api.messages.sendMessage({ conversationId: conversation.id, body: secret });
  await api.messages.sendMessage({ conversationId: conversation.id, body: `${secret} ${"x".repeat(10_000)}` }).catch(() => undefined);
  await api.messages.sendMessage({ conversationId: conversation.id, body: secret, idempotencyKey: "bad key" }).catch(() => undefined);
  // Over the gateway too: a send frame and a malformed one.
  const ws = new WebSocket(`${services[1]!.url.replace("http", "ws")}/ws`, ["chat.v1.json", `bearer.${token}`]);
  await new Promise((resolve, reject) => { ws.once("open", resolve); ws.once("error", reject); });
  ws.send(JSON.stringify({ type: "send", conversationId: conversation.id, body: secret, ref: "r1" }));
  ws.send(`{"type":"send","body":"${secret}"`);
  await new Promise((r) => setTimeout(r, 1_000));
  ws.close();
  await Promise.all(services.map((s) => s.stop(3_000)));
  for (const s of services) {
    const log = logOf(s);
    assert.ok(log.length > 0, `${s.name} logged something at trace level`);
    assert.ok(!log.includes(secret), `${s.name} logged a message body`);
    assert.ok(!log.includes(password), `${s.name} logged a password`);
    assert.ok(!log.includes(token), `${s.name} logged a token`);
  }
});
