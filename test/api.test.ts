import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { Code, ConnectError } from "@connectrpc/connect";
import { SignJWT, UnsecuredJWT } from "jose";
import { sql } from "slonik";
import { z } from "zod";
import { ConversationKind, MessageKind } from "../internal/gen/chat/v1/common_pb.js";
import { startChatNode, type ChatNode } from "../internal/app/index.js";
import { createLogger } from "../internal/telemetry/index.js";
import { commitBatches } from "../internal/storage/index.js";
import { apiClients, createTestEnv, registerUser, type TestEnv } from "./support/index.js";

let env: TestEnv;
let node: ChatNode;
let baseUrl: string;

before(async () => {
  env = await createTestEnv();
  node = await startChatNode(env.config, createLogger("test", "silent"));
  baseUrl = `http://127.0.0.1:${node.port}`;
});
after(async () => {
  await node?.close();
  await env?.close();
});

async function code(promise: Promise<unknown>): Promise<Code> {
  try {
    await promise;
  } catch (error) {
    return ConnectError.from(error).code;
  }
  assert.fail("expected the call to fail");
}

async function rest(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any, headers: res.headers };
}

async function group(owner: Awaited<ReturnType<typeof registerUser>>, members: string[] = [], title = "team") {
  const res = await owner.api.conversations.createConversation({ kind: ConversationKind.GROUP, title, memberIds: members });
  return res.conversation!;
}

describe("auth", () => {
  test("register, login, wrong password, duplicate user, bad input", async () => {
    const anon = apiClients(baseUrl);
    const username = `carol${Date.now().toString(36)}`;
    const reg = await anon.auth.register({ username, password: "long enough pw", displayName: "Carol" });
    assert.equal(reg.user!.username, username);
    assert.ok(reg.token.split(".").length === 3);
    const login = await anon.auth.login({ username: username.toUpperCase(), password: "long enough pw" });
    assert.equal(login.user!.id, reg.user!.id);
    assert.equal(await code(anon.auth.login({ username, password: "wrong password" })), Code.Unauthenticated);
    assert.equal(await code(anon.auth.login({ username: "nobody-here", password: "whatever12" })), Code.Unauthenticated);
    assert.equal(await code(anon.auth.register({ username, password: "another pw 123" })), Code.AlreadyExists);
    assert.equal(await code(anon.auth.register({ username: "x", password: "long enough pw" })), Code.InvalidArgument);
    assert.equal(await code(anon.auth.register({ username: "has space", password: "long enough pw" })), Code.InvalidArgument);
    assert.equal(await code(anon.auth.register({ username: `d${username}`, password: "short" })), Code.InvalidArgument);
    assert.equal(await code(anon.auth.login({ username: "", password: "" })), Code.InvalidArgument);
  });

  test("forged, alg none, expired, missing exp and missing tokens are rejected", async () => {
    const user = await registerUser(baseUrl, "tok");
    const secret = new TextEncoder().encode(env.config.jwtSecret);
    const claims = { username: user.username };
    const now = Math.floor(Date.now() / 1000);
    const tokens = {
      forged: await new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setSubject(user.id).setIssuer("chat-system")
        .setExpirationTime(now + 600).sign(new TextEncoder().encode("a-completely-different-secret-of-32+chars")),
      none: new UnsecuredJWT(claims).setSubject(user.id).setIssuer("chat-system").setExpirationTime(now + 600).encode(),
      expired: await new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setSubject(user.id).setIssuer("chat-system")
        .setExpirationTime(now - 60).sign(secret),
      noExp: await new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setSubject(user.id).setIssuer("chat-system").sign(secret),
      hs512: await new SignJWT(claims).setProtectedHeader({ alg: "HS512" }).setSubject(user.id).setIssuer("chat-system")
        .setExpirationTime(now + 600).sign(secret),
      garbage: "not.a.token",
    };
    for (const [name, token] of Object.entries(tokens)) {
      const c = apiClients(baseUrl, token);
      assert.equal(await code(c.conversations.listConversations({})), Code.Unauthenticated, name);
      const r = await rest("GET", "/api/conversations", undefined, { authorization: `Bearer ${token}` });
      assert.equal(r.status, 401, name);
    }
    assert.equal(await code(apiClients(baseUrl).conversations.listConversations({})), Code.Unauthenticated);
    assert.equal((await rest("GET", "/api/conversations")).status, 401);
    // The genuine token still works.
    assert.ok(await user.api.conversations.listConversations({}));
  });
});

describe("conversations", () => {
  test("direct: exactly one other member, one per pair", async () => {
    const a = await registerUser(baseUrl, "dira");
    const b = await registerUser(baseUrl, "dirb");
    const first = await a.api.conversations.createConversation({ kind: ConversationKind.DIRECT, memberUsernames: [b.username] });
    assert.equal(first.created, true);
    assert.equal(first.conversation!.members.length, 2);
    const again = await b.api.conversations.createConversation({ kind: ConversationKind.DIRECT, memberIds: [a.id] });
    assert.equal(again.created, false);
    assert.equal(again.conversation!.id, first.conversation!.id);
    assert.equal(await code(a.api.conversations.createConversation({ kind: ConversationKind.DIRECT, memberIds: [] })), Code.InvalidArgument);
    assert.equal(await code(a.api.conversations.createConversation({ kind: ConversationKind.DIRECT, memberIds: [randomUUID()] })), Code.InvalidArgument);
    assert.equal(await code(a.api.conversations.updateConversation({ conversationId: first.conversation!.id, title: "x" })), Code.FailedPrecondition);
  });

  test("direct create races end with one conversation", async () => {
    const a = await registerUser(baseUrl, "race");
    const b = await registerUser(baseUrl, "race");
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? a : b).api.conversations.createConversation({ kind: ConversationKind.DIRECT, memberIds: [i % 2 ? b.id : a.id] })),
    );
    assert.equal(new Set(results.map((r) => r.conversation!.id)).size, 1);
    assert.equal(results.filter((r) => r.created).length, 1);
  });

  test("group: create, get, list by activity, rename, add and remove members with roles", async () => {
    const owner = await registerUser(baseUrl, "own");
    const m1 = await registerUser(baseUrl, "mem");
    const m2 = await registerUser(baseUrl, "mem");
    const g = await group(owner, [m1.id], "Project");
    assert.equal(g.kind, ConversationKind.GROUP);
    assert.equal(g.title, "Project");
    assert.equal(g.members.length, 2);
    const other = await group(owner, [], "Second");
    const listed = await owner.api.conversations.listConversations({});
    assert.deepEqual(listed.conversations.slice(0, 2).map((c) => c.id), [other.id, g.id]);
    await owner.api.messages.sendMessage({ conversationId: g.id, body: "bump" });
    const relisted = await owner.api.conversations.listConversations({});
    assert.equal(relisted.conversations[0]!.id, g.id, "activity reorders the list");
    assert.equal(relisted.conversations[0]!.lastMessage!.body, "bump");

    const renamed = await owner.api.conversations.updateConversation({ conversationId: g.id, title: "Renamed" });
    assert.equal(renamed.conversation!.title, "Renamed");
    assert.equal(await code(m1.api.conversations.updateConversation({ conversationId: g.id, title: "Nope" })), Code.PermissionDenied);
    assert.equal(await code(m1.api.conversations.addMembers({ conversationId: g.id, userIds: [m2.id] })), Code.PermissionDenied);
    const added = await owner.api.conversations.addMembers({ conversationId: g.id, usernames: [m2.username] });
    assert.equal(added.conversation!.members.length, 3);
    assert.ok(await m2.api.conversations.getConversation({ conversationId: g.id }));
    await owner.api.conversations.removeMember({ conversationId: g.id, userId: m2.id });
    assert.equal(await code(m2.api.conversations.getConversation({ conversationId: g.id })), Code.NotFound);
    await m1.api.conversations.removeMember({ conversationId: g.id, userId: m1.id });
    assert.equal(await code(m1.api.messages.sendMessage({ conversationId: g.id, body: "gone" })), Code.NotFound);
    const events = await owner.api.messages.listMessages({ conversationId: g.id });
    assert.deepEqual(events.messages.map((m) => m.kind), [
      MessageKind.CONVERSATION_CREATED, MessageKind.TEXT, MessageKind.CONVERSATION_RENAMED,
      MessageKind.MEMBERS_ADDED, MessageKind.MEMBER_REMOVED, MessageKind.MEMBER_REMOVED,
    ]);
    assert.deepEqual(events.messages.map((m) => Number(m.seq)), [1, 2, 3, 4, 5, 6]);
    assert.equal(await code(owner.api.conversations.createConversation({ kind: ConversationKind.GROUP, title: "" })), Code.InvalidArgument);
    assert.equal(await code(owner.api.conversations.createConversation({ kind: ConversationKind.UNSPECIFIED })), Code.InvalidArgument);
  });

  test("a non-member gets NOT_FOUND from every conversation call, like a missing conversation", async () => {
    const owner = await registerUser(baseUrl, "priv");
    const outsider = await registerUser(baseUrl, "out");
    const g = await group(owner);
    const missing = randomUUID();
    for (const id of [g.id, missing, "not-a-uuid"]) {
      const o = outsider.api;
      const calls: [string, () => Promise<unknown>][] = [
        ["get", () => o.conversations.getConversation({ conversationId: id })],
        ["update", () => o.conversations.updateConversation({ conversationId: id, title: "x" })],
        ["add", () => o.conversations.addMembers({ conversationId: id, userIds: [outsider.id] })],
        ["remove", () => o.conversations.removeMember({ conversationId: id, userId: owner.id })],
        ["send", () => o.messages.sendMessage({ conversationId: id, body: "hi" })],
        ["list", () => o.messages.listMessages({ conversationId: id })],
        ["read", () => o.messages.markRead({ conversationId: id, seq: 1n })],
      ];
      for (const [name, call] of calls) assert.equal(await code(call()), Code.NotFound, `${name} on ${id}`);
      const r = await rest("GET", `/api/messages?conversationId=${id}`, undefined, { authorization: `Bearer ${outsider.token}` });
      assert.equal(r.status, 404);
    }
    const listed = await outsider.api.conversations.listConversations({});
    assert.equal(listed.conversations.length, 0);
  });
});

describe("messages", () => {
  test("send, list, paginate before/after, mark read forward only, unread counts", async () => {
    const a = await registerUser(baseUrl, "pa");
    const b = await registerUser(baseUrl, "pb");
    const g = await group(a, [b.id]);
    for (let i = 1; i <= 25; i++) await a.api.messages.sendMessage({ conversationId: g.id, body: `m${i}` });
    const newest = await b.api.messages.listMessages({ conversationId: g.id, limit: 10 });
    assert.deepEqual(newest.messages.map((m) => Number(m.seq)), [17, 18, 19, 20, 21, 22, 23, 24, 25, 26]);
    assert.equal(newest.hasMore, true);
    const older = await b.api.messages.listMessages({ conversationId: g.id, beforeSeq: 17n, limit: 10 });
    assert.deepEqual(older.messages.map((m) => Number(m.seq)), [7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
    const oldest = await b.api.messages.listMessages({ conversationId: g.id, beforeSeq: 7n, limit: 10 });
    assert.deepEqual(oldest.messages.map((m) => Number(m.seq)), [1, 2, 3, 4, 5, 6]);
    assert.equal(oldest.hasMore, false);
    const after = await b.api.messages.listMessages({ conversationId: g.id, afterSeq: 20n, limit: 3 });
    assert.deepEqual(after.messages.map((m) => Number(m.seq)), [21, 22, 23]);
    assert.equal(after.hasMore, true);
    assert.equal(await code(b.api.messages.listMessages({ conversationId: g.id, afterSeq: 1n, beforeSeq: 5n })), Code.InvalidArgument);
    assert.equal(await code(b.api.messages.listMessages({ conversationId: g.id, limit: 1000 })), Code.InvalidArgument);

    let conv = (await b.api.conversations.getConversation({ conversationId: g.id })).conversation!;
    assert.equal(conv.unreadCount, 25n);
    assert.equal((await b.api.messages.markRead({ conversationId: g.id, seq: 10n })).lastReadSeq, 10n);
    assert.equal((await b.api.messages.markRead({ conversationId: g.id, seq: 5n })).lastReadSeq, 10n, "never backward");
    conv = (await b.api.conversations.getConversation({ conversationId: g.id })).conversation!;
    assert.equal(conv.unreadCount, 16n);
    assert.equal((await b.api.messages.markRead({ conversationId: g.id, seq: 10_000n })).lastReadSeq, 26n, "never past last_seq");
    conv = (await a.api.conversations.getConversation({ conversationId: g.id })).conversation!;
    assert.equal(conv.unreadCount, 0n, "own messages are never unread");

    assert.equal(await code(a.api.messages.sendMessage({ conversationId: g.id, body: "   " })), Code.InvalidArgument);
    assert.equal(await code(a.api.messages.sendMessage({ conversationId: g.id, body: "x".repeat(env.config.maxMessageBytes + 1) })), Code.InvalidArgument);
    assert.equal(await code(a.api.messages.sendMessage({ conversationId: g.id, body: "ok", idempotencyKey: "bad key with spaces" })), Code.InvalidArgument);
  });

  test("200 concurrent sends to one conversation get seqs 2..201 with no gap or duplicate", async () => {
    const a = await registerUser(baseUrl, "conc");
    const g = await group(a);
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => a.api.messages.sendMessage({ conversationId: g.id, body: `n${i}`, idempotencyKey: `k${i}` })),
    );
    const seqs = results.map((r) => Number(r.message!.seq)).sort((x, y) => x - y);
    assert.deepEqual(seqs, Array.from({ length: 200 }, (_, i) => i + 2));
    const rows = await env.db.anyFirst(sql.type(z.object({ seq: z.bigint() }))`
      SELECT seq FROM messages WHERE conversation_id = ${g.id} ORDER BY seq`);
    assert.deepEqual(rows.map(Number), Array.from({ length: 201 }, (_, i) => i + 1));
    const last = await env.db.oneFirst(sql.type(z.object({ last_seq: z.bigint() }))`SELECT last_seq FROM conversations WHERE id = ${g.id}`);
    assert.equal(last, 201n);
  });

  test("a retried send with the same Idempotency-Key yields one row and the same answer, also concurrently", async () => {
    const a = await registerUser(baseUrl, "idem");
    const g = await group(a);
    const first = await a.api.messages.sendMessage({ conversationId: g.id, body: "once", idempotencyKey: "key-1" });
    const retry = await a.api.messages.sendMessage({ conversationId: g.id, body: "once", idempotencyKey: "key-1" });
    assert.equal(retry.duplicate, true);
    assert.equal(retry.message!.id, first.message!.id);
    assert.equal(retry.message!.seq, first.message!.seq);
    const burst = await Promise.all(
      Array.from({ length: 30 }, () => a.api.messages.sendMessage({ conversationId: g.id, body: "burst", idempotencyKey: "key-2" })),
    );
    assert.equal(new Set(burst.map((r) => r.message!.id)).size, 1);
    assert.equal(burst.filter((r) => !r.duplicate).length, 1);
    // Via REST with the header: same message again.
    const viaRest = await rest("POST", "/api/messages", { conversationId: g.id, body: "burst" }, { authorization: `Bearer ${a.token}`, "idempotency-key": "key-2" });
    assert.equal(viaRest.status, 200, "a duplicate is not created again");
    assert.equal(viaRest.body.message.id, burst[0]!.message!.id);
    assert.equal(viaRest.body.duplicate, true);
    assert.equal(await code(a.api.messages.sendMessage({ conversationId: g.id, body: "different", idempotencyKey: "key-1" })), Code.AlreadyExists);
    const count = await env.db.oneFirst(sql.type(z.object({ n: z.number() }))`
      SELECT count(*)::int AS n FROM messages WHERE conversation_id = ${g.id} AND kind = 1`);
    assert.equal(count, 2, "duplicates never consume a seq");
    const last = await env.db.oneFirst(sql.type(z.object({ last_seq: z.bigint() }))`SELECT last_seq FROM conversations WHERE id = ${g.id}`);
    assert.equal(last, 3n);
  });

  test("a stale-epoch commit is refused and the actor recovers on a fresh epoch", async () => {
    const a = await registerUser(baseUrl, "epoch");
    const g = await group(a);
    await a.api.messages.sendMessage({ conversationId: g.id, body: "before" });
    const epochOf = () => env.db.oneFirst(sql.type(z.object({ epoch: z.bigint() }))`SELECT epoch FROM conversations WHERE id = ${g.id}`);
    const mine = await epochOf();
    // Another owner activates: the live actor's epoch is now stale.
    await env.db.query(sql.unsafe`UPDATE conversations SET epoch = epoch + 1 WHERE id = ${g.id}`);
    const fenced = await commitBatches(env.db, [{ conversationId: g.id, epoch: mine, fromSeq: 2n, events: [], changes: [], outbox: [] }]);
    assert.deepEqual([...fenced], [g.id], "the stale epoch's batch is refused");
    // The actor's own next commit is fenced; the router retries on a fresh activation.
    const after = await a.api.messages.sendMessage({ conversationId: g.id, body: "after" });
    assert.equal(after.message!.seq, 3n);
    assert.ok((await epochOf()) > mine + 1n);
    const epochs = await env.db.any(sql.type(z.object({ seq: z.bigint(), epoch: z.bigint() }))`
      SELECT seq, epoch FROM messages WHERE conversation_id = ${g.id} ORDER BY seq`);
    assert.ok(epochs[2]!.epoch > mine + 1n, "the later row was committed under the newer epoch");
  });
});

describe("transports", () => {
  test("REST paths map onto the same API", async () => {
    const reg = await rest("POST", "/api/auth/register", { username: `rest${Date.now().toString(36)}`, password: "rest password" });
    assert.equal(reg.status, 201);
    const auth = { authorization: `Bearer ${reg.body.token}` };
    const bob = await registerUser(baseUrl, "restb");
    const login = await rest("POST", "/api/auth/login", { username: reg.body.user.username, password: "rest password" });
    assert.equal(login.status, 200);
    const created = await rest("POST", "/api/conversations", { kind: "group", title: "REST", memberIds: [bob.id] }, auth);
    assert.equal(created.status, 201);
    const id = created.body.conversation.id;
    assert.equal((await rest("GET", `/api/conversations/${id}`, undefined, auth)).body.conversation.title, "REST");
    assert.equal((await rest("PATCH", `/api/conversations/${id}`, { title: "Renamed" }, auth)).body.conversation.title, "Renamed");
    const sent = await rest("POST", "/api/messages", { conversationId: id, content: "seed-style content" }, auth);
    assert.equal(sent.body.message.body, "seed-style content");
    const page = await rest("GET", `/api/messages?conversationId=${id}&limit=2`, undefined, auth);
    assert.equal(page.body.messages.length, 2);
    assert.equal(page.body.hasMore, true);
    const read = await rest("POST", "/api/messages/read", { conversationId: id, seq: sent.body.message.seq }, auth);
    assert.equal(read.body.lastReadSeq, sent.body.message.seq);
    const list = await rest("GET", "/api/conversations", undefined, auth);
    assert.equal(list.body.conversations[0].id, id);
    // Bad input: clear errors, nothing stored.
    const bad = await rest("POST", "/api/messages", "{not json", auth);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, "invalid_argument");
    assert.equal((await rest("POST", "/api/messages", { conversationId: id, body: "x", unknownField: 1 }, auth)).status, 400);
    assert.equal((await rest("POST", "/api/messages", [1, 2], auth)).status, 400);
    assert.equal((await rest("POST", "/api/messages", { conversationId: id, body: "y".repeat(200_000) }, auth)).status, 413);
    assert.equal((await rest("GET", "/api/messages?conversationId=" + id + "&limit=abc", undefined, auth)).status, 400);
    assert.equal((await rest("GET", "/api/nothing-here", undefined, auth)).status, 404);
    const health = await fetch(`${baseUrl}/health`);
    assert.equal(health.status, 200);
    assert.equal((await fetch(`${baseUrl}/ready`)).status, 200);
    const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
    assert.match(metrics, /chat_actor_batch_size_bucket/);
  });

  test("gRPC over HTTP/2 (@grpc/grpc-js client) reaches the same service", async () => {
    const user = await registerUser(baseUrl, "grpc");
    const def = protoLoader.loadSync("chat/v1/message.proto", {
      includeDirs: [new URL("../proto", import.meta.url).pathname], longs: String, enums: String, defaults: true,
    });
    const MessageService = (grpc.loadPackageDefinition(def) as any).chat.v1.MessageService;
    const client = new MessageService(`127.0.0.1:${node.port}`, grpc.credentials.createInsecure());
    const g = await group(user);
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${user.token}`);
    const call = <T>(method: string, req: object, md = metadata) =>
      new Promise<T>((resolve, reject) => client[method](req, md, (err: Error | null, res: T) => (err ? reject(err) : resolve(res))));
    const sent = await call<any>("sendMessage", { conversationId: g.id, body: "over grpc", idempotencyKey: "g1" });
    assert.equal(sent.message.seq, "2");
    const again = await call<any>("sendMessage", { conversationId: g.id, body: "over grpc", idempotencyKey: "g1" });
    assert.equal(again.duplicate, true);
    const listed = await call<any>("listMessages", { conversationId: g.id });
    assert.equal(listed.messages.at(-1).body, "over grpc");
    await assert.rejects(call("listMessages", { conversationId: g.id }, new grpc.Metadata()), (e: any) => e.code === grpc.status.UNAUTHENTICATED);
    client.close();
    // And connect-node's gRPC transport.
    const viaGrpc = apiClients(baseUrl, user.token, "grpc");
    const m = await viaGrpc.messages.sendMessage({ conversationId: g.id, body: "connect grpc" });
    assert.equal(m.message!.seq, 3n);
  });
});
