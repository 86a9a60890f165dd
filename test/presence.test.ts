import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { sql } from "slonik";
import { z } from "zod";
import { startChatNode, type ChatNode } from "../internal/app/index.js";
import { ConversationKind } from "../internal/gen/chat/v1/common_pb.js";
import { PresenceStatus } from "../internal/gen/chat/v1/events_pb.js";
import { PresenceService } from "../internal/gen/chat/v1/presence_pb.js";
import { createPresenceTracker, subscribePresence, type PresenceChange } from "../internal/presence/index.js";
import { createRedis, redisKeys, type Redis } from "../internal/redis/index.js";
import { createLogger } from "../internal/telemetry/index.js";
import { createTestEnv, eventually, freePort, registerUser, serviceClient, serviceEnv, startService, type ServiceProcess, type TestEnv, type TestUser } from "./support/index.js";

const TTL_MS = 1500;
const GRACE_MS = 1200;

let env: TestEnv;
let node: ChatNode;
let presence: ServiceProcess | undefined;
let presenceUrl: string;
let redis: Redis;
let unsubscribe: (() => Promise<void>) | undefined;
const changes: PresenceChange[] = [];
let alice: TestUser;
let bob: TestUser;
let carol: TestUser;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function call(method: string, path: string, token: string | null, body?: unknown) {
  const res = await fetch(`${presenceUrl}${path}`, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

const statusOf = async (userId: string) => (await call("GET", `/status/${userId}`, alice.token)).body.status as string;
const changesOf = (userId: string) => changes.filter((c) => c.userId === userId);

before(async () => {
  env = await createTestEnv({ CHAT_PRESENCE_TTL_MS: String(TTL_MS), CHAT_PRESENCE_GRACE_MS: String(GRACE_MS), CHAT_PRESENCE_SWEEP_MS: "50" });
  node = await startChatNode(env.config, createLogger("test", "silent"));
  const baseUrl = `http://127.0.0.1:${node.port}`;
  [alice, bob, carol] = [await registerUser(baseUrl, "alice"), await registerUser(baseUrl, "bob"), await registerUser(baseUrl, "carol")];
  await alice.api.conversations.createConversation({ kind: ConversationKind.GROUP, title: "ab", memberIds: [bob.id] });
  const port = await freePort();
  presence = await startService("presence", {
    name: "presence",
    port,
    readyPath: "/health",
    readyTimeoutMs: 20_000,
    env: serviceEnv(env, {
      CHAT_PRESENCE_PORT: String(port),
      CHAT_PRESENCE_TTL_MS: String(TTL_MS),
      CHAT_PRESENCE_GRACE_MS: String(GRACE_MS),
      CHAT_PRESENCE_SWEEP_MS: "50",
    }),
  });
  presenceUrl = presence.url;
  redis = createRedis(env.config.redisUrl);
  unsubscribe = await subscribePresence(redis, redisKeys(env.redisPrefix), (c) => changes.push(c));
});

after(async () => {
  presence?.signal("SIGKILL");
  await unsubscribe?.();
  redis?.disconnect();
  await node?.close();
  await env?.close();
});

describe("presence", () => {
  test("heartbeat needs a token; unknown users are offline", async () => {
    assert.equal((await call("POST", "/heartbeat", null, {})).status, 401);
    assert.equal((await call("GET", `/status/${carol.id}`, null)).status, 401);
    const s = await call("GET", `/status/${carol.id}`, alice.token);
    assert.equal(s.status, 200);
    assert.deepEqual([s.body.status, s.body.online, s.body.lastSeen], ["offline", false, null]);
  });

  test("two devices: one leaves -> still online; both gone -> offline only after the grace period; one change each way", async () => {
    assert.equal((await call("POST", "/heartbeat", alice.token, { deviceId: "phone" })).body.status, "online");
    // The gateway path: a WebSocket connection is a device too.
    const tracker = createPresenceTracker({ redis, keys: redisKeys(env.redisPrefix), ttlMs: TTL_MS, graceMs: GRACE_MS });
    await tracker.reportConnection(alice.id, "ws-1", true);
    await eventually(() => changesOf(alice.id).length === 1);
    const online = changesOf(alice.id)[0]!;
    assert.equal(online.status, "online");
    // Only users sharing a conversation hear about it.
    assert.deepEqual(online.audience, [bob.id]);

    // The phone goes away (stops beating); the connection keeps beating: online throughout.
    for (let i = 0; i < 8; i++) {
      await tracker.reportConnection(alice.id, "ws-1", true);
      await sleep(TTL_MS / 3);
    }
    assert.equal(await statusOf(alice.id), "online");
    // The connection closes: still online within the grace period...
    await tracker.reportConnection(alice.id, "ws-1", false);
    const closedAt = Date.now();
    await sleep(GRACE_MS / 2);
    assert.equal(await statusOf(alice.id), "online");
    // ...offline after it.
    await eventually(async () => (await statusOf(alice.id)) === "offline", { timeoutMs: GRACE_MS * 4 });
    assert.ok(Date.now() - closedAt >= GRACE_MS - 50, `offline after ${Date.now() - closedAt} ms, grace ${GRACE_MS} ms`);
    await eventually(() => changesOf(alice.id).length === 2);
    const offline = changesOf(alice.id)[1]!;
    assert.equal(offline.status, "offline");
    assert.deepEqual(offline.audience, [bob.id]);
    assert.ok(offline.lastSeenMs >= online.changedAtMs);
    // Bob and carol share no conversation: carol never appears in an audience.
    assert.ok(changes.every((c) => !c.audience.includes(carol.id)));
  });

  test("a quick reconnect within the grace period does not flap", async () => {
    await call("POST", "/heartbeat", bob.token, { deviceId: "laptop" });
    await eventually(() => changesOf(bob.id).length === 1);
    const tracker = createPresenceTracker({ redis, keys: redisKeys(env.redisPrefix), ttlMs: TTL_MS, graceMs: GRACE_MS });
    for (let i = 0; i < 3; i++) {
      await tracker.reportConnection(bob.id, `c${i}`, true);
      await tracker.reportConnection(bob.id, `c${i}`, false);
      await sleep(GRACE_MS / 3);
      await call("POST", "/heartbeat", bob.token, { deviceId: "laptop" });
    }
    assert.equal(await statusOf(bob.id), "online");
    assert.equal(changesOf(bob.id).length, 1, "no offline/online flaps");
    assert.deepEqual(changesOf(bob.id)[0]!.audience, [alice.id]);
  });

  test("heartbeat expiry: a silent device goes offline after ttl + grace", async () => {
    const started = Date.now();
    await call("POST", "/heartbeat", carol.token, {});
    assert.equal(await statusOf(carol.id), "online");
    await sleep(TTL_MS);
    assert.equal(await statusOf(carol.id), "online", "within ttl + grace");
    await eventually(async () => (await statusOf(carol.id)) === "offline", { timeoutMs: (TTL_MS + GRACE_MS) * 3 });
    assert.ok(Date.now() - started >= TTL_MS + GRACE_MS - 50);
    await eventually(() => changesOf(carol.id).length === 2);
    // Carol shares no conversation: her changes have an empty audience.
    assert.ok(changesOf(carol.id).every((c) => c.audience.length === 0));
  });

  test("batch status over REST and RPC, in the order asked", async () => {
    await call("POST", "/heartbeat", alice.token, { deviceId: "web" });
    await call("POST", "/heartbeat", bob.token, { deviceId: "web" });
    const ids = [carol.id, alice.id, bob.id];
    const rest = await call("POST", "/status/batch", alice.token, { userIds: ids });
    assert.equal(rest.status, 200);
    assert.deepEqual(rest.body.statuses.map((s: any) => [s.userId, s.status]), [[carol.id, "offline"], [alice.id, "online"], [bob.id, "online"]]);
    assert.ok(rest.body.statuses[0].lastSeenMs > 0);
    const bad = await call("POST", "/status/batch", alice.token, { userIds: "x" });
    assert.equal(bad.status, 400);
    const tooMany = await call("POST", "/status/batch", alice.token, { userIds: Array.from({ length: 501 }, () => alice.id) });
    assert.equal(tooMany.status, 400);

    const client = serviceClient(PresenceService, presenceUrl, alice.token);
    const beat = await client.heartbeat({ deviceId: "rpc" });
    assert.equal(beat.presence!.status, PresenceStatus.ONLINE);
    assert.equal(beat.ttlMs, BigInt(TTL_MS));
    const batch = await client.batchGetStatus({ userIds: ids });
    assert.deepEqual(batch.presences.map((p) => p.status), [PresenceStatus.OFFLINE, PresenceStatus.ONLINE, PresenceStatus.ONLINE]);
    assert.equal((await client.getStatus({ userId: carol.id })).presence!.status, PresenceStatus.OFFLINE);
  });

  test("every change is in the outbox as presence.user.changed keyed by user id", async () => {
    const rows = (await eventually(async () => {
      const r = await env.db.any(sql.type(z.object({ key: z.string(), event_id: z.string(), payload: z.any() }))`
        SELECT key, event_id, payload FROM outbox WHERE topic = 'presence.user.changed' ORDER BY id`);
      return r.length >= changes.length ? r : null;
    }))!;
    assert.equal(rows.length, changes.length);
    for (const row of rows) {
      assert.equal(row.payload.userId, row.key);
      assert.equal(row.payload.version, 1);
      assert.ok(["online", "offline"].includes(row.payload.status));
      assert.equal(row.event_id, row.payload.eventId);
    }
  });
});
