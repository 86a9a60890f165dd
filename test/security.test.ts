/**
 * Security suite (issue 6): authorization over every route, removal, encryption at rest (toggle,
 * tampering, rotation killed and resumed), shared rate limits through the API, hostile input.
 * Real PostgreSQL and Redis; chat-nodes in-process, workers as child processes.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import * as http2 from "node:http2";
import * as net from "node:net";
import { after, before, describe, test } from "node:test";
import { createClient, Code, ConnectError } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import fc from "fast-check";
import { SignJWT, UnsecuredJWT } from "jose";
import { sql } from "slonik";
import { z } from "zod";
import { bodyAad } from "../internal/actor/index.js";
import { startChatNode, type ChatNode } from "../internal/app/index.js";
import { loadConfig, type Config } from "../internal/config/index.js";
import { createKeyRotationWorker, findRotationCheckpoint, messageCodecFromConfig, requestKeyRotation } from "../internal/crypto/index.js";
import { ConversationKind } from "../internal/gen/chat/v1/common_pb.js";
import { EventService } from "../internal/gen/chat/v1/event_service_pb.js";
import { createRedis, redisKeys } from "../internal/redis/index.js";
import { createDatabase } from "../internal/storage/index.js";
import { createLogger } from "../internal/telemetry/index.js";
import { apiClients, createTestEnv, eventually, registerUser, type TestEnv } from "./support/index.js";

const K1 = randomBytes(32);
const K2 = randomBytes(32);
const b64 = (k: Buffer) => `base64:${k.toString("base64")}`;
const logger = createLogger("security-test", "silent");

let env: TestEnv;
let node: ChatNode;
let base: string;
let nodeCount = 0;
/** One port for every restart, so clients made earlier keep working. */
let port = 0;

/** Every variable a chat-node of this suite gets; `extra` wins. Budgets are wide unless a test narrows them. */
function envFor(extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...(process.env as Record<string, string>),
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    DATABASE_URL: env.databaseUrl,
    CHAT_REDIS_PREFIX: env.redisPrefix,
    CHAT_NODE_PORT: String(port),
    CHAT_NODE_GRPC_PORT: "0",
    CHAT_DB_POOL_SIZE: "8",
    CHAT_ENCRYPTION_ENABLED: "true",
    CHAT_MESSAGE_KEY: b64(K1),
    CHAT_MESSAGE_KEYS: `2:${b64(K2)}`,
    CHAT_MESSAGE_KEY_ACTIVE: "1",
    CHAT_RATELIMIT_SEND_BURST: "100000",
    CHAT_RATELIMIT_AUTH_BURST: "100000",
    CHAT_RATELIMIT_LOGIN_BURST: "100000",
    ...extra,
  };
}
const configFor = (extra: Record<string, string> = {}): Config => loadConfig({ ...envFor(extra), CHAT_NODE_ID: `sec-${process.pid}-${nodeCount++}` });

async function restart(extra: Record<string, string> = {}): Promise<void> {
  await node?.close();
  node = await startChatNode(configFor(extra), logger);
  base = `http://127.0.0.1:${node.port}`;
}

before(async () => {
  env = await createTestEnv();
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", () => r()));
  port = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  await restart();
});
after(async () => {
  await node?.close();
  await env?.close();
});

type User = Awaited<ReturnType<typeof registerUser>>;

async function codeOf(promise: Promise<unknown>): Promise<Code> {
  try {
    await promise;
  } catch (error) {
    return ConnectError.from(error).code;
  }
  assert.fail("expected the call to fail");
}

async function http(method: string, path: string, options: { body?: string | Buffer; headers?: Record<string, string>; token?: string } = {}) {
  const headers: Record<string, string> = { "content-type": "application/json", ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  const res = await fetch(`${base}${path}`, { method, headers, body: options.body });
  const text = await res.text();
  let json: any = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text, headers: res.headers };
}

const countMessages = (conversationId?: string) =>
  env.db.oneFirst(sql.type(z.object({ n: z.number() }))`
    SELECT count(*)::int AS n FROM messages ${conversationId ? sql.fragment`WHERE conversation_id = ${conversationId}` : sql.fragment``}`);

// ---------------------------------------------------------------------------------------------
describe("authorization over every route", () => {
  let owner: User, member: User, outsider: User, groupId: string, secret: string;
  const tokens: Record<string, () => Promise<string | undefined>> = {};

  before(async () => {
    owner = await registerUser(base, "own");
    member = await registerUser(base, "mem");
    outsider = await registerUser(base, "out");
    groupId = (await owner.api.conversations.createConversation({ kind: ConversationKind.GROUP, title: "private", memberIds: [member.id] })).conversation!.id;
    await member.api.messages.sendMessage({ conversationId: groupId, body: "members only" });
    secret = configFor().jwtSecret;
    const claims = { username: owner.username };
    const now = Math.floor(Date.now() / 1000);
    tokens.anonymous = async () => undefined;
    tokens.garbage = async () => "abc.def.ghi";
    tokens.forged = () => new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setSubject(owner.id).setIssuer("chat-system").setExpirationTime(now + 600)
      .sign(new TextEncoder().encode("an-attacker-secret-that-is-long-enough-000"));
    tokens.expired = () => new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setSubject(owner.id).setIssuer("chat-system").setIssuedAt(now - 7200).setExpirationTime(now - 3600)
      .sign(new TextEncoder().encode(secret));
    tokens.algNone = async () => new UnsecuredJWT(claims).setSubject(owner.id).setIssuer("chat-system").setExpirationTime(now + 600).encode();
    tokens.wrongAlg = () => new SignJWT(claims).setProtectedHeader({ alg: "HS512" }).setSubject(owner.id).setIssuer("chat-system").setExpirationTime(now + 600)
      .sign(new TextEncoder().encode(secret));
    tokens.noExp = () => new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setSubject(owner.id).setIssuer("chat-system").sign(new TextEncoder().encode(secret));
    tokens.tampered = async () => {
      // The outsider's valid token with the payload rewritten to claim the owner's id.
      const [h, p, s] = outsider.token.split(".");
      const payload = JSON.parse(Buffer.from(p!, "base64url").toString());
      payload.sub = owner.id;
      return `${h}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.${s}`;
    };
  });

  type Outcome = { status: number; code: string };
  type Route = { name: string; scoped: boolean; call: (token: string | undefined) => Promise<Outcome> };

  const rpc = (service: string, method: string, body: (g: string) => unknown) => async (token: string | undefined, g: string): Promise<Outcome> => {
    const r = await http("POST", `/chat.v1.${service}/${method}`, { body: JSON.stringify(body(g)), ...(token !== undefined ? { token } : {}) });
    return { status: r.status, code: r.json?.code ?? "" };
  };
  const rest = (method: string, path: (g: string) => string, body?: (g: string) => unknown) => async (token: string | undefined, g: string): Promise<Outcome> => {
    const r = await http(method, path(g), { ...(body ? { body: JSON.stringify(body(g)) } : {}), ...(token !== undefined ? { token } : {}) });
    return { status: r.status, code: r.json?.error?.code ?? "" };
  };
  const subscribe = async (token: string | undefined, g: string): Promise<Outcome> => {
    const transport = createConnectTransport({ baseUrl: base, httpVersion: "1.1", interceptors: token === undefined ? [] : [(next) => (req) => { req.header.set("authorization", `Bearer ${token}`); return next(req); }] });
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 3000);
    try {
      for await (const _ of createClient(EventService, transport).subscribe({ conversationIds: [g] }, { signal: abort.signal })) break;
      return { status: 200, code: "ok" };
    } catch (error) {
      const c = ConnectError.from(error).code;
      return { status: 0, code: c === Code.Unauthenticated ? "unauthenticated" : c === Code.NotFound ? "not_found" : `code-${c}` };
    } finally {
      clearTimeout(timer);
    }
  };

  const routes = (): Route[] => {
    const u = randomUUID();
    const defs: [string, boolean, (t: string | undefined, g: string) => Promise<Outcome>][] = [
      ["rpc CreateConversation", false, rpc("ConversationService", "CreateConversation", () => ({ kind: "CONVERSATION_KIND_GROUP", title: "x" }))],
      ["rpc GetConversation", true, rpc("ConversationService", "GetConversation", (g) => ({ conversationId: g }))],
      ["rpc ListConversations", false, rpc("ConversationService", "ListConversations", () => ({}))],
      ["rpc UpdateConversation", true, rpc("ConversationService", "UpdateConversation", (g) => ({ conversationId: g, title: "pwned" }))],
      ["rpc AddMembers", true, rpc("ConversationService", "AddMembers", (g) => ({ conversationId: g, userIds: [outsider.id] }))],
      ["rpc RemoveMember", true, rpc("ConversationService", "RemoveMember", (g) => ({ conversationId: g, userId: member.id }))],
      ["rpc SendMessage", true, rpc("MessageService", "SendMessage", (g) => ({ conversationId: g, body: "intruder" }))],
      ["rpc ListMessages", true, rpc("MessageService", "ListMessages", (g) => ({ conversationId: g }))],
      ["rpc MarkRead", true, rpc("MessageService", "MarkRead", (g) => ({ conversationId: g, seq: "1" }))],
      ["rpc ListInbox", false, rpc("InboxService", "ListInbox", () => ({}))],
      ["rpc Subscribe", true, subscribe],
      ["GET /api/conversations", false, rest("GET", () => "/api/conversations")],
      ["POST /api/conversations", false, rest("POST", () => "/api/conversations", () => ({ kind: "group", title: "x" }))],
      ["GET /api/conversations/:id", true, rest("GET", (g) => `/api/conversations/${g}`)],
      ["PATCH /api/conversations/:id", true, rest("PATCH", (g) => `/api/conversations/${g}`, () => ({ title: "pwned" }))],
      ["POST /api/conversations/:id/members", true, rest("POST", (g) => `/api/conversations/${g}/members`, () => ({ userIds: [outsider.id] }))],
      ["DELETE /api/conversations/:id/members/:uid", true, rest("DELETE", (g) => `/api/conversations/${g}/members/${member.id}`)],
      ["GET /api/messages", true, rest("GET", (g) => `/api/messages?conversationId=${g}`)],
      ["POST /api/messages", true, rest("POST", () => "/api/messages", (g) => ({ conversationId: g, content: "intruder" }))],
      ["POST /api/messages/read", true, rest("POST", () => "/api/messages/read", (g) => ({ conversationId: g, seq: "1" }))],
      ["GET /api/inbox", false, rest("GET", () => "/api/inbox")],
    ];
    void u;
    return defs.map(([name, scoped, call]) => ({ name, scoped, call: (t) => call(t, groupId) }));
  };

  const badCallers = ["anonymous", "garbage", "forged", "expired", "algNone", "wrongAlg", "noExp", "tampered"];

  test("property: every route refuses anonymous and forged, expired, alg:none, wrong-alg, exp-less and tampered tokens", async () => {
    const before = await countMessages(groupId);
    const all = routes();
    // Exhaustively first, then fast-check shuffles the order and repeats with fresh tokens.
    for (const route of all) {
      for (const caller of badCallers) {
        const outcome = await route.call(await tokens[caller]!());
        assert.ok(outcome.code === "unauthenticated" && (outcome.status === 401 || outcome.status === 0), `${route.name} as ${caller}: ${JSON.stringify(outcome)}`);
      }
    }
    await fc.assert(fc.asyncProperty(fc.constantFrom(...all), fc.constantFrom(...badCallers), async (route, caller) => {
      const outcome = await route.call(await tokens[caller]!());
      return outcome.code === "unauthenticated";
    }), { numRuns: 60 });
    assert.equal(await countMessages(groupId), before, "nothing was stored");
  });

  test("property: a non-member gets not_found on every conversation route and sees nothing elsewhere", async () => {
    const before = await countMessages(groupId);
    const scoped = routes().filter((r) => r.scoped);
    await fc.assert(fc.asyncProperty(fc.constantFrom(...scoped), async (route) => {
      const outcome = await route.call(outsider.token);
      assert.ok(outcome.code === "not_found" && (outcome.status === 404 || outcome.status === 0), `${route.name}: ${JSON.stringify(outcome)}`);
    }), { numRuns: 40 });
    for (const route of scoped) assert.equal((await route.call(outsider.token)).code, "not_found", route.name);
    const listed = await outsider.api.conversations.listConversations({});
    assert.ok(!listed.conversations.some((c) => c.id === groupId));
    const inbox = await http("GET", "/api/inbox", { token: outsider.token });
    assert.ok(!inbox.text.includes(groupId));
    assert.equal(await countMessages(groupId), before);
    const g = await owner.api.conversations.getConversation({ conversationId: groupId });
    assert.equal(g.conversation!.title, "private");
    assert.equal(g.conversation!.members.length, 2);
  });

  test("gRPC refuses the same way", async () => {
    const anon = apiClients(base, undefined, "grpc");
    assert.equal(await codeOf(anon.messages.listMessages({ conversationId: groupId })), Code.Unauthenticated);
    assert.equal(await codeOf(apiClients(base, await tokens.algNone!(), "grpc").messages.sendMessage({ conversationId: groupId, body: "x" })), Code.Unauthenticated);
    assert.equal(await codeOf(apiClients(base, outsider.token, "grpc").messages.sendMessage({ conversationId: groupId, body: "x" })), Code.NotFound);
  });
});

// ---------------------------------------------------------------------------------------------
describe("membership removal", () => {
  test("a removed member loses access at once", async () => {
    const owner = await registerUser(base, "rm");
    const gone = await registerUser(base, "rm");
    const g = (await owner.api.conversations.createConversation({ kind: ConversationKind.GROUP, title: "t", memberIds: [gone.id] })).conversation!.id;
    await gone.api.messages.sendMessage({ conversationId: g, body: "still here" });
    await owner.api.conversations.removeMember({ conversationId: g, userId: gone.id });
    // No waiting: the very next calls are refused.
    assert.equal(await codeOf(gone.api.messages.sendMessage({ conversationId: g, body: "after removal" })), Code.NotFound);
    assert.equal(await codeOf(gone.api.messages.listMessages({ conversationId: g })), Code.NotFound);
    assert.equal(await codeOf(gone.api.conversations.getConversation({ conversationId: g })), Code.NotFound);
    assert.equal(await codeOf(gone.api.messages.markRead({ conversationId: g, seq: 1n })), Code.NotFound);
    assert.equal((await http("GET", `/api/messages?conversationId=${g}`, { token: gone.token })).status, 404);
    const bodies = (await owner.api.messages.listMessages({ conversationId: g })).messages.map((m) => m.body);
    assert.ok(!bodies.includes("after removal"));
  });
});

// ---------------------------------------------------------------------------------------------
const rowSchema = z.object({ id: z.string(), conversation_id: z.string(), seq: z.bigint(), body: z.string().nullable(), ciphertext: z.instanceof(Buffer).nullable(), iv: z.instanceof(Buffer).nullable(), tag: z.instanceof(Buffer).nullable(), key_version: z.number().nullable() });
const rowsOf = (conversationId: string) => env.db.any(sql.type(rowSchema)`
  SELECT id, conversation_id, seq, body, ciphertext, iv, tag, key_version FROM messages WHERE conversation_id = ${conversationId} AND kind = 1 ORDER BY seq`);

describe("encryption at rest", () => {
  let alice: User, bob: User, g: string;
  const sent: string[] = [];

  before(async () => {
    alice = await registerUser(base, "enc");
    bob = await registerUser(base, "enc");
    g = (await alice.api.conversations.createConversation({ kind: ConversationKind.GROUP, title: "enc", memberIds: [bob.id] })).conversation!.id;
  });

  test("toggle on -> off -> on: rows of both kinds coexist and stay readable through the API", async () => {
    const send = async (u: User, body: string) => { sent.push(body); await u.api.messages.sendMessage({ conversationId: g, body }); };
    await send(alice, "sealed one ünïcødé 🎉");
    await send(bob, "sealed two");
    await restart({ CHAT_ENCRYPTION_ENABLED: "false" });
    await send(alice, "plain three");
    let listed = (await bob.api.messages.listMessages({ conversationId: g })).messages.filter((m) => m.body !== "").map((m) => m.body);
    assert.deepEqual(listed, sent);
    await restart({ CHAT_ENCRYPTION_ENABLED: "true" });
    await send(bob, "sealed four");
    listed = (await alice.api.messages.listMessages({ conversationId: g })).messages.filter((m) => m.body !== "").map((m) => m.body);
    assert.deepEqual(listed, sent);
    const rows = await rowsOf(g);
    assert.deepEqual(rows.map((r) => (r.key_version === null ? "plain" : `v${r.key_version}`)), ["v1", "v1", "plain", "v1"]);
    for (const r of rows.filter((r) => r.key_version !== null)) {
      assert.equal(r.body, null);
      assert.equal(r.iv!.length, 12);
      assert.equal(r.tag!.length, 16);
      for (const text of sent) assert.ok(!r.ciphertext!.includes(Buffer.from(text)), "no plaintext in the ciphertext column");
    }
    // Kafka-bound outbox payloads leave sealed too (CHAT_KAFKA_PLAINTEXT_BODIES=false).
    const payloads = await env.db.anyFirst(sql.type(z.object({ p: z.string() }))`
      SELECT payload::text AS p FROM outbox WHERE key = ${g} AND topic = 'chat.message.created'`);
    assert.ok(payloads.some((p) => p.includes("plain three")), "the plaintext-era row went out in plaintext");
    for (const text of ["sealed one", "sealed two", "sealed four"]) assert.ok(!payloads.some((p) => p.includes(text)), `${text} leaked to the outbox`);
  });

  test("a ciphertext swapped between rows, or a truncated tag, fails to open (and nothing leaks)", async () => {
    const rows = (await rowsOf(g)).filter((r) => r.key_version !== null);
    const [a, b] = [rows[0]!, rows[1]!];
    const put = (r: typeof a, from: typeof a) => env.db.query(sql.unsafe`
      UPDATE messages SET ciphertext = ${sql.binary(from.ciphertext!)}, iv = ${sql.binary(from.iv!)}, tag = ${sql.binary(from.tag!)}
      WHERE conversation_id = ${r.conversation_id} AND seq = ${r.seq}`);
    await put(a, b);
    await put(b, a);
    const swapped = await http("POST", "/chat.v1.MessageService/ListMessages", { token: alice.token, body: JSON.stringify({ conversationId: g }) });
    assert.equal(swapped.status, 500);
    assert.equal(swapped.json.code, "internal");
    for (const text of sent) assert.ok(!swapped.text.includes(text));
    assert.ok(!/at .*\.ts|stack|SELECT|UPDATE/i.test(swapped.text), "no stack or SQL");
    await put(a, a);
    await put(b, b);
    assert.equal((await alice.api.messages.listMessages({ conversationId: g })).messages.filter((m) => m.body !== "").length, sent.length);
    await env.db.query(sql.unsafe`UPDATE messages SET tag = substring(tag from 1 for 12) WHERE conversation_id = ${a.conversation_id} AND seq = ${a.seq}`);
    assert.equal(await codeOf(alice.api.messages.listMessages({ conversationId: g })), Code.Internal);
    await put(a, a);
    assert.equal((await alice.api.messages.listMessages({ conversationId: g })).messages.filter((m) => m.body !== "").length, sent.length);
  });
});

// ---------------------------------------------------------------------------------------------
describe("key rotation", () => {
  test("key 1 -> key 2 under load, worker killed (SIGKILL) halfway and resumed: every row on key 2, every body intact", async () => {
    // Old rows on key 1 (plus the plaintext row from the toggle test).
    const users = await Promise.all(Array.from({ length: 4 }, () => registerUser(base, "rot")));
    const conversations = await Promise.all(Array.from({ length: 8 }, (_, i) =>
      users[i % 4]!.api.conversations.createConversation({ kind: ConversationKind.GROUP, title: `r${i}`, memberIds: users.map((u) => u.id).filter((id) => id !== users[i % 4]!.id) })
        .then((r) => r.conversation!.id)));
    const expected = new Map<string, string>();
    const sendSome = async (count: number, tag: string) => {
      await Promise.all(conversations.map(async (c, i) => {
        for (let k = 0; k < count; k++) {
          const body = `${tag}-${c.slice(0, 8)}-${k}-${randomBytes(6).toString("hex")} ✓`;
          const r = await users[(i + k) % 4]!.api.messages.sendMessage({ conversationId: c, body });
          expected.set(r.message!.id, body);
        }
      }));
    };
    await sendSome(120, "old");
    const toRotate = await env.db.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM messages WHERE COALESCE(key_version, 0) <> 2`);
    assert.ok(toRotate >= 960);

    // New writes use key 2 from now on; load keeps running during the rotation.
    await restart({ CHAT_MESSAGE_KEY_ACTIVE: "2" });
    let loading = true;
    const load = (async () => { while (loading) await sendSome(2, "new"); })();

    const keys = redisKeys(env.redisPrefix);
    const workerEnv = envFor({
      CHAT_MESSAGE_KEY_ACTIVE: "2", CHAT_INBOX_LOCK_MS: "2000", CHAT_KEY_ROTATION_BATCH: "20", CHAT_KEY_ROTATION_PAUSE_MS: "25",
      CHAT_INBOX_METRICS_PORT: "0", CHAT_INBOX_RECONCILE_MS: "0", LOG_LEVEL: "error", CHAT_DB_POOL_SIZE: "4",
    });
    const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", "cmd/inbox-worker/main.ts"], { env: workerEnv, stdio: ["ignore", "ignore", "inherit"] });
    const redis = createRedis(env.config.redisUrl);
    try {
      await requestKeyRotation(env.config.redisUrl, keys, 2);
      const halfway = await eventually(async () => {
        const c = await findRotationCheckpoint(redis, keys);
        return c && c.rewritten >= toRotate / 3 ? c : null;
      }, { timeoutMs: 60_000, intervalMs: 20 });
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
      const atKill = (await findRotationCheckpoint(redis, keys))!;
      assert.equal(atKill.state, "running");
      assert.ok(atKill.rewritten < toRotate, `killed halfway (${atKill.rewritten}/${toRotate})`);
      assert.ok(halfway!.rewritten <= atKill.rewritten);

      // A new worker picks the job up once the dead worker's lock expires and resumes from the checkpoint.
      const worker = createKeyRotationWorker({
        redisUrl: env.config.redisUrl, keys, db: env.db, codec: messageCodecFromConfig(configFor({ CHAT_MESSAGE_KEY_ACTIVE: "2" })),
        batchSize: 50, pauseMs: 5, logger, lockMs: 2000,
      });
      try {
        const done = await eventually(async () => {
          const c = await findRotationCheckpoint(redis, keys);
          return c?.state === "done" ? c : null;
        }, { timeoutMs: 90_000, intervalMs: 100 });
        assert.equal(done!.startedAtMs, atKill.startedAtMs, "the same run resumed, not a new one");
        assert.equal(done!.failed, 0);
        assert.equal(done!.rewritten, toRotate, "each old row re-sealed exactly once");
      } finally {
        await worker.close();
      }
    } finally {
      loading = false;
      await load;
      if (child.exitCode === null) child.kill("SIGKILL");
      redis.disconnect();
    }
    const versions = await env.db.any(sql.type(z.object({ v: z.number().nullable(), n: z.number() }))`
      SELECT key_version AS v, count(*)::int AS n FROM messages GROUP BY key_version`);
    assert.deepEqual(versions.map((r) => r.v), [2], `every row on key 2: ${JSON.stringify(versions)}`);
    // Bodies intact: open every row with key 2 only (key 1 no longer needed), and through the API.
    const onlyKey2 = messageCodecFromConfig(loadConfig({ JWT_SECRET: env.config.jwtSecret, CHAT_ENCRYPTION_ENABLED: "true", CHAT_MESSAGE_KEYS: `2:${b64(K2)}` }));
    const rows = await env.db.any(sql.type(rowSchema)`SELECT id, conversation_id, seq, body, ciphertext, iv, tag, key_version FROM messages`);
    let checked = 0;
    for (const r of rows) {
      const text = onlyKey2.open({ kind: "sealed", ciphertext: r.ciphertext!, iv: r.iv!, tag: r.tag!, keyVersion: r.key_version! }, bodyAad(r.conversation_id, r.id));
      if (expected.has(r.id)) { assert.equal(text, expected.get(r.id)); checked++; }
    }
    assert.equal(checked, expected.size);
    console.log(`key rotation: ${toRotate} old rows re-sealed, ${expected.size - 960} written under load, ${rows.length} rows checked`);
    const page = await users[0]!.api.messages.listMessages({ conversationId: conversations[0]!, limit: 200 });
    for (const m of page.messages) if (expected.has(m.id)) assert.equal(m.body, expected.get(m.id));
    // chatctl sees the same.
    const out = await new Promise<string>((resolve, reject) => {
      const p = spawn(process.execPath, ["--import", "tsx", "cmd/chatctl/main.ts", "keys", "status"], { env: envFor({ CHAT_MESSAGE_KEY_ACTIVE: "2" }), stdio: ["ignore", "pipe", "inherit"] });
      let text = "";
      p.stdout!.on("data", (d) => (text += d));
      p.on("exit", (code) => (code === 0 ? resolve(text) : reject(new Error(`chatctl exited ${code}`))));
    });
    const status = JSON.parse(out);
    assert.deepEqual(Object.keys(status.rowsByKeyVersion), ["2"]);
    assert.equal(status.checkpoint.state, "done");
  });
});

// ---------------------------------------------------------------------------------------------
describe("rate limits through the API", () => {
  before(() => restart({ CHAT_MESSAGE_KEY_ACTIVE: "2", CHAT_RATELIMIT_SEND_BURST: "5", CHAT_RATELIMIT_SEND_PER_SECOND: "1", CHAT_RATELIMIT_AUTH_BURST: "3", CHAT_RATELIMIT_AUTH_PER_MINUTE: "1", CHAT_RATELIMIT_LOGIN_BURST: "2", CHAT_RATELIMIT_LOGIN_PER_MINUTE: "1" }));

  test("sends: RPC ResourceExhausted with Retry-After; REST 429 with Retry-After, RateLimit and RateLimit-Policy; nothing queued", async () => {
    const u = await http("POST", "/api/auth/register", { body: JSON.stringify({ username: `rl${Date.now().toString(36)}`, password: "correct horse battery" }), headers: { "x-forwarded-for": "198.51.100.1" } });
    assert.equal(u.status, 201);
    const token = u.json.token as string;
    const api = apiClients(base, token);
    const g = (await api.conversations.createConversation({ kind: ConversationKind.GROUP, title: "rl" })).conversation!.id;
    const before = await countMessages(g);
    for (let i = 0; i < 5; i++) await api.messages.sendMessage({ conversationId: g, body: `ok ${i}` });
    const refused = await http("POST", "/chat.v1.MessageService/SendMessage", { token, body: JSON.stringify({ conversationId: g, body: "too many" }) });
    assert.equal(refused.status, 429);
    assert.equal(refused.json.code, "resource_exhausted");
    assert.ok(Number(refused.headers.get("retry-after")) >= 1);
    assert.match(refused.headers.get("ratelimit-policy") ?? "", /^"send";q=5;w=5$/);
    assert.match(refused.headers.get("ratelimit") ?? "", /^"send";r=0;t=\d+$/);
    const viaRest = await http("POST", "/api/messages", { token, body: JSON.stringify({ conversationId: g, content: "too many" }) });
    assert.equal(viaRest.status, 429);
    assert.equal(viaRest.json.error.code, "resource_exhausted");
    assert.ok(Number(viaRest.headers.get("retry-after")) >= 1);
    assert.ok(viaRest.headers.get("ratelimit"));
    assert.equal(await codeOf(api.messages.sendMessage({ conversationId: g, body: "too many" })), Code.ResourceExhausted);
    assert.equal(await countMessages(g), before + 5, "refused sends were not queued");
  });

  test("auth: per client IP (X-Forwarded-For from the trusted proxy) and per username", async () => {
    const ip = { "x-forwarded-for": "203.0.113.9" };
    const attempt = (username: string, headers = ip) => http("POST", "/api/auth/login", { body: JSON.stringify({ username, password: "wrong password!" }), headers });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await attempt(`nobody${i}`)).status);
    assert.deepEqual(statuses, [401, 401, 401, 429]);
    const refused = await attempt("nobody9");
    assert.ok(refused.headers.get("retry-after") && refused.headers.get("ratelimit-policy")?.startsWith('"auth"'));
    assert.equal((await attempt("nobody0", { "x-forwarded-for": "203.0.113.10" })).status, 401, "another IP has its own budget");
    // Per username, from many IPs.
    const victim = `victim${Date.now().toString(36)}`;
    const s = [];
    for (let i = 0; i < 3; i++) s.push((await attempt(victim, { "x-forwarded-for": `192.0.2.${i + 1}` })).status);
    assert.deepEqual(s, [401, 401, 429]);
    assert.equal(await codeOf(apiClients(base).auth.login({ username: victim, password: "x".repeat(10) })), Code.ResourceExhausted);
  });
});

// ---------------------------------------------------------------------------------------------
describe("hostile input", () => {
  let u: User, g: string;
  before(async () => {
    await restart({ CHAT_MESSAGE_KEY_ACTIVE: "2" });
    u = await registerUser(base, "hi");
    g = (await u.api.conversations.createConversation({ kind: ConversationKind.GROUP, title: "hostile" })).conversation!.id;
  });
  const alive = async () => assert.equal((await fetch(`${base}/health`)).status, 200);
  /**
   * A request body that does not parse as protobuf. connect-es answers these itself, before any
   * interceptor, with INTERNAL ("parse binary: ..."), as gRPC does; JSON parse errors are
   * INVALID_ARGUMENT. Either way: a code, a safe message, no stack.
   */
  const parseRefused = (r: { status: number; json: any; text: string }) => {
    assert.ok(r.status === 400 || (r.status === 500 && r.json?.code === "internal" && /^parse binary: /.test(r.json.message)), `${r.status} ${r.text.slice(0, 200)}`);
    assert.ok(!/\.ts:\d+|\.js:\d+|stack/.test(r.text));
  };

  test("oversized bodies: REST 413, Connect and gRPC refused; nothing stored", async () => {
    const before = await countMessages();
    const huge = JSON.stringify({ conversationId: g, content: "x".repeat(200_000) });
    const r = await http("POST", "/api/messages", { token: u.token, body: huge });
    assert.equal(r.status, 413);
    assert.equal(r.json.error.code, "invalid_argument");
    const c = await http("POST", "/chat.v1.MessageService/SendMessage", { token: u.token, body: JSON.stringify({ conversationId: g, body: "x".repeat(200_000) }) });
    assert.ok(c.status >= 400 && c.status < 500, `connect status ${c.status}`);
    assert.ok(["resource_exhausted", "invalid_argument"].includes(c.json.code));
    assert.equal(await codeOf(apiClients(base, u.token, "grpc").messages.sendMessage({ conversationId: g, body: "x".repeat(200_000) })), Code.ResourceExhausted);
    // Within the request limit but over the message limit (4096 bytes of UTF-8).
    assert.equal(await codeOf(u.api.messages.sendMessage({ conversationId: g, body: "é".repeat(2049) })), Code.InvalidArgument);
    assert.equal(await countMessages(), before);
    await alive();
  });

  test("deep and malformed JSON, garbage protobuf on Connect and gRPC: clear 4xx, nothing stored", async () => {
    const before = await countMessages();
    const deep = `{"conversationId":"${g}","body":${"[".repeat(20_000)}${"]".repeat(20_000)}}`;
    const deepObject = `{"conversationId":"${g}","body":${'{"a":'.repeat(5_000)}1${"}".repeat(5_000)}}`;
    for (const body of [deep, deepObject, `{"conversationId":`, "\u0000\u0001garbage", "[]", "null", `{"conversationId":"${g}","body":{"$ne":1}}`, `{"conversationId":"${g}","__proto__":{"body":"x"}}`, `{"conversationId":"${g}","body":"x","body":1}`]) {
      const r = await http("POST", "/api/messages", { token: u.token, body });
      assert.ok(r.status === 400, `REST ${body.slice(0, 30)}: ${r.status}`);
      assert.equal(r.json.error.code, "invalid_argument");
      const c = await http("POST", "/chat.v1.MessageService/SendMessage", { token: u.token, body });
      assert.ok(c.status === 400, `Connect ${body.slice(0, 30)}: ${c.status} ${c.text.slice(0, 100)}`);
      assert.equal(c.json.code, "invalid_argument");
    }
    const garbage = randomBytes(512);
    const bin = await http("POST", "/chat.v1.MessageService/SendMessage", { token: u.token, body: garbage, headers: { "content-type": "application/proto" } });
    parseRefused(bin);
    // gRPC over h2c: a length-prefixed frame full of garbage.
    const grpcStatus = await new Promise<string>((resolve, reject) => {
      const session = http2.connect(base);
      session.on("error", reject);
      const frame = Buffer.concat([Buffer.from([0, 0, 0, 2, 0]), garbage]);
      const stream = session.request({ ":method": "POST", ":path": "/chat.v1.MessageService/SendMessage", "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${u.token}` });
      let status = "";
      stream.on("response", (h) => { if (h["grpc-status"]) status = String(h["grpc-status"]); });
      stream.on("trailers", (t) => { status = String(t["grpc-status"]); });
      stream.on("close", () => { session.close(); resolve(status); });
      stream.resume();
      stream.end(frame);
    });
    assert.ok([String(Code.InvalidArgument), String(Code.Internal)].includes(grpcStatus), `grpc-status ${grpcStatus}`);
    assert.equal(await countMessages(), before);
    await alive();
  });

  test("invalid UTF-8, control characters, huge and odd unicode strings", async () => {
    const before = await countMessages();
    const badUtf8 = Buffer.concat([Buffer.from(`{"conversationId":"${g}","body":"bad `), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from(`"}`)]);
    const proto = await http("POST", "/chat.v1.MessageService/SendMessage", {
      token: u.token, headers: { "content-type": "application/proto" },
      // SendMessageRequest{conversation_id (1), body (2) = invalid UTF-8}
      body: Buffer.concat([Buffer.from([0x0a, 36]), Buffer.from(g), Buffer.from([0x12, 3, 0xff, 0xfe, 0xc3])]),
    });
    parseRefused(proto);
    const rest = await http("POST", "/api/messages", { token: u.token, body: badUtf8 });
    assert.equal(rest.status, 400, "REST refuses bodies that are not UTF-8");
    assert.equal(rest.json.error.code, "invalid_argument");
    for (const path of ["/chat.v1.MessageService/SendMessage"]) {
      const r = await http("POST", path, { token: u.token, body: badUtf8 });
      const stored = (await u.api.messages.listMessages({ conversationId: g })).messages.find((m) => m.body.startsWith("bad "));
      // Decoders substitute U+FFFD for the invalid bytes; either the call is refused or only well-formed text is stored.
      assert.ok(r.status === 400 || (r.status < 300 && stored?.body.isWellFormed()), `${path}: ${r.status}`);
    }
    const afterUtf8 = await countMessages();
    const badStrings = ["nul\u0000byte", " \n\t ", "", "\ud800 lone surrogate", "x".repeat(5000)];
    for (const body of badStrings) assert.equal(await codeOf(u.api.messages.sendMessage({ conversationId: g, body })), Code.InvalidArgument, JSON.stringify(body.slice(0, 20)));
    for (const title of ["t\u0007bell", "x".repeat(300), "\ud800"]) {
      assert.equal(await codeOf(u.api.conversations.updateConversation({ conversationId: g, title })), Code.InvalidArgument);
    }
    for (const username of ["a", "x".repeat(100), "bad name", "ünï", "a\u0000b"]) {
      assert.equal(await codeOf(apiClients(base).auth.register({ username, password: "correct horse battery" })), Code.InvalidArgument, username);
    }
    assert.equal(await codeOf(u.api.messages.sendMessage({ conversationId: g, body: "ok", idempotencyKey: "k".repeat(500) })), Code.InvalidArgument);
    assert.equal(await countMessages(), afterUtf8);
    // Odd but valid unicode round-trips byte for byte.
    const odd = "Z͑ͫ̓ͪ̂ͫ̽͏̴̙̤̞͉͚̯̞̠͍ 👩‍👩‍👧‍👦 \u202eRTL\u202c \ufeff";
    await u.api.messages.sendMessage({ conversationId: g, body: odd });
    assert.ok((await u.api.messages.listMessages({ conversationId: g })).messages.some((m) => m.body === odd));
    assert.ok(before <= afterUtf8);
    await alive();
  });

  test("negative, huge and non-numeric seqs and limits", async () => {
    for (const q of ["limit=-1", "limit=100000", "limit=abc", "beforeSeq=-5", "afterSeq=99999999999999999999999", "beforeSeq=1e3", "limit=1&limit=2&afterSeq=0x10"]) {
      const r = await http("GET", `/api/messages?conversationId=${g}&${q}`, { token: u.token });
      assert.equal(r.status, 400, `${q}: ${r.status}`);
      assert.equal(r.json.error.code, "invalid_argument");
    }
    assert.equal(await codeOf(u.api.messages.listMessages({ conversationId: g, beforeSeq: -1n })), Code.InvalidArgument);
    assert.equal(await codeOf(u.api.messages.listMessages({ conversationId: g, limit: 100_000 })), Code.InvalidArgument);
    assert.equal(await codeOf(u.api.messages.listMessages({ conversationId: g, limit: -3 })), Code.InvalidArgument);
    assert.equal(await codeOf(u.api.messages.markRead({ conversationId: g, seq: -1n })), Code.InvalidArgument);
    const huge = await u.api.messages.markRead({ conversationId: g, seq: 9_223_372_036_854_775_807n });
    assert.ok(huge.lastReadSeq < 1000n, "a read marker never moves past the last seq");
    const c = await http("POST", "/chat.v1.MessageService/ListMessages", { token: u.token, body: JSON.stringify({ conversationId: g, beforeSeq: "99999999999999999999999" }) });
    assert.equal(c.status, 400);
    await alive();
  });

  test("10,000 headers and header floods are refused without harm", async () => {
    const lines = Array.from({ length: 10_000 }, (_, i) => `x-h${i}: v`).join("\r\n");
    const answer = await new Promise<string>((resolve) => {
      const socket = net.connect(node.port, "127.0.0.1", () => socket.write(`GET /health HTTP/1.1\r\nhost: x\r\n${lines}\r\n\r\n`));
      let text = "";
      socket.on("data", (d) => (text += d));
      socket.on("error", () => resolve(text));
      socket.on("close", () => resolve(text));
    });
    assert.match(answer, /^HTTP\/1\.1 431/);
    await alive();
  });

  test("CORS allow-list and security headers on every response, errors without stacks or SQL", async () => {
    const allowed = "http://localhost:3000";
    for (const [method, path, body] of [["GET", "/health"], ["GET", "/nope"], ["POST", "/api/messages", "{"], ["POST", "/chat.v1.MessageService/SendMessage", "{}"], ["GET", `/api/messages?conversationId=${g}`]] as const) {
      const r = await http(method, path, { ...(body ? { body } : {}), headers: { origin: allowed } });
      assert.equal(r.headers.get("x-content-type-options"), "nosniff", `${method} ${path}`);
      assert.equal(r.headers.get("x-frame-options"), "DENY");
      assert.equal(r.headers.get("access-control-allow-origin"), allowed);
      assert.ok(!/node_modules|\.ts:\d+|stack|SELECT |INSERT /i.test(r.text), `${path} leaks internals: ${r.text.slice(0, 200)}`);
    }
    const evil = await http("GET", "/health", { headers: { origin: "https://evil.example" } });
    assert.equal(evil.headers.get("access-control-allow-origin"), null);
    const preflight = await fetch(`${base}/api/messages`, { method: "OPTIONS", headers: { origin: "https://evil.example", "access-control-request-method": "POST" } });
    assert.equal(preflight.status, 403);
    const ok = await fetch(`${base}/api/messages`, { method: "OPTIONS", headers: { origin: allowed, "access-control-request-method": "POST" } });
    assert.equal(ok.status, 204);
    assert.match(ok.headers.get("access-control-expose-headers") ?? "", /ratelimit/i);
  });

  test("PostgreSQL statement timeout bounds every query (deadline_exceeded, a safe error)", async () => {
    // Note: slonik's connectionTimeout bounds establishing a connection, not waiting for a free one.
    const db = await createDatabase({ url: env.databaseUrl, poolSize: 1, statementTimeoutMs: 200, connectionTimeoutMs: 300 });
    try {
      const started = Date.now();
      await assert.rejects(db.query(sql.unsafe`SELECT pg_sleep(3)`), (e: any) => e.code === "deadline_exceeded" && e.message === "database statement timed out");
      assert.ok(Date.now() - started < 2000);
      assert.equal(await db.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT 1 AS n`), 1, "the connection is usable afterwards");
    } finally {
      await db.end();
    }
  });

  test("login does not reveal whether a user exists (same answer, similar time)", async () => {
    const time = async (username: string) => {
      const started = performance.now();
      const r = await http("POST", "/api/auth/login", { body: JSON.stringify({ username, password: "definitely wrong" }), headers: { "x-forwarded-for": `100.64.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}` } });
      return { ms: performance.now() - started, status: r.status, body: JSON.stringify(r.json) };
    };
    const known: number[] = [], unknown: number[] = [];
    for (let i = 0; i < 6; i++) {
      const a = await time(u.username);
      const b = await time(`ghost${i}${Date.now().toString(36)}`);
      assert.equal(a.status, 401);
      assert.equal(a.body, b.body);
      known.push(a.ms);
      unknown.push(b.ms);
    }
    const median = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    const ratio = median(known) / median(unknown);
    console.log(`login timing: known ${median(known).toFixed(1)} ms, unknown ${median(unknown).toFixed(1)} ms`);
    assert.ok(ratio > 0.5 && ratio < 2, `timing ratio ${ratio.toFixed(2)}`);
  });
});
