import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { WebSocket } from "ws";
import { ConversationKind } from "../internal/gen/chat/v1/common_pb.js";
import { startChatNode, startGateway, startPresence, type ChatNode, type Gateway, type PresenceServer } from "../internal/app/index.js";
import { createLogger } from "../internal/telemetry/index.js";
import { createTestEnv, eventually, registerUser, type TestEnv } from "./support/index.js";

let env: TestEnv;
let node: ChatNode;
let gateway: Gateway;
let presence: PresenceServer;

before(async () => {
  env = await createTestEnv({ CHAT_PRESENCE_TTL_MS: "1500", CHAT_PRESENCE_GRACE_MS: "300", CHAT_PRESENCE_SWEEP_MS: "50" });
  const logger = createLogger("test", "silent");
  node = await startChatNode(env.config, logger);
  presence = await startPresence(env.config, logger);
  gateway = await startGateway({ ...env.config, gatewayApiUrls: [`http://127.0.0.1:${node.port}`] }, logger);
});
after(async () => {
  await gateway?.close();
  await presence?.close();
  await node?.close();
  await env?.close();
});

function connect(token: string): Promise<{ ws: WebSocket; frames: any[] }> {
  const ws = new WebSocket(`ws://127.0.0.1:${gateway.port}/ws`, ["chat.v1.json", `bearer.${token}`]);
  const frames: any[] = [];
  ws.on("message", (data) => frames.push(JSON.parse(String(data))));
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve({ ws, frames }));
    ws.once("error", reject);
  });
}

test("a WebSocket connection makes its user online for those sharing a conversation, and offline after the grace period", async () => {
  const base = `http://127.0.0.1:${node.port}`;
  const alice = await registerUser(base, "pa");
  const bob = await registerUser(base, "pb");
  const stranger = await registerUser(base, "ps");
  await alice.api.conversations.createConversation({ kind: ConversationKind.DIRECT, memberIds: [bob.id] });
  const a = await connect(alice.token);
  const s = await connect(stranger.token);
  const b = await connect(bob.token);
  const bobFrames = (status: string) => a.frames.filter((f) => f.type === "presence" && f.userId === bob.id && f.status === status);
  await eventually(() => bobFrames("online").length > 0, { timeoutMs: 5_000 });
  b.ws.close();
  await eventually(() => bobFrames("offline").length > 0, { timeoutMs: 5_000 });
  assert.equal(s.frames.filter((f) => f.type === "presence" && f.userId === bob.id).length, 0, "no shared conversation, no presence");
  a.ws.close();
  s.ws.close();
});
