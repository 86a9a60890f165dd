import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { sql } from "slonik";
import { z } from "zod";
import { ConversationKind } from "../internal/gen/chat/v1/common_pb.js";
import { startChatNode, type ChatNode } from "../internal/app/index.js";
import { createLogger } from "../internal/telemetry/index.js";
import { createTestEnv, eventually, registerUser, type TestEnv } from "./support/index.js";

let env: TestEnv;
let node: ChatNode;
let base: string;

before(async () => {
  env = await createTestEnv({ CHAT_ACTOR_IDLE_MS: "300", CHAT_ACTOR_MAX_LIVE: "3" });
  node = await startChatNode(env.config, createLogger("test", "silent"));
  base = `http://127.0.0.1:${node.port}`;
});
after(async () => {
  await node?.close();
  await env?.close();
});

const liveActors = async () => {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(/^chat_actors_live (\d+)/m.exec(text)?.[1] ?? NaN);
};
const epochOf = (id: string) => env.db.oneFirst(sql.type(z.object({ epoch: z.bigint() }))`SELECT epoch FROM conversations WHERE id = ${id}`);

test("live actors are capped (least recently used go first), idle ones passivate, and come back on the next command", async () => {
  const user = await registerUser(base, "pas");
  const ids: string[] = [];
  for (let i = 0; i < 6; i++) {
    ids.push((await user.api.conversations.createConversation({ kind: ConversationKind.GROUP, title: `p${i}` })).conversation!.id);
  }
  const started = Date.now();
  for (const id of ids) await user.api.messages.sendMessage({ conversationId: id, body: "hello" });
  const live = await liveActors();
  if (Date.now() - started < 300) assert.equal(live, 3, "the cap, not idleness, passivated the oldest"); // none idle that long yet
  else assert.ok(live <= 3);
  await eventually(async () => (await liveActors()) === 0, { timeoutMs: 5_000 });
  const before = await epochOf(ids[0]!);
  const again = await user.api.messages.sendMessage({ conversationId: ids[0]!, body: "back" });
  assert.equal(again.message!.seq, 3n, "no seq lost across passivation");
  assert.equal(await epochOf(ids[0]!), before + 1n, "reactivation takes a new epoch");
  assert.equal(await liveActors(), 1);
});
