/**
 * The WebSocket gateway as a real process: refusal before upgrade (401/403), frame limits,
 * typing (throttled, never stored), slow readers cut off with 4101 under bounded memory,
 * membership (non-members refused, removed members cut at once) and drain (4100).
 */
import assert from "node:assert/strict";
import type * as net from "node:net";
import { after, before, describe, test } from "node:test";
import { Redis } from "ioredis";
import { SignJWT } from "jose";
import { sql } from "slonik";
import { WebSocket } from "ws";
import { z } from "zod";
import { ConversationKind } from "../internal/gen/chat/v1/common_pb.js";
import { clearRedisPrefix, createTestEnv, eventually, registerUser, startChatService, type ServiceProcess, type TestEnv, type TestUser } from "./support/index.js";

let env: TestEnv;
const procs: ServiceProcess[] = [];
let nodeUrl = "";
let gwUrl = "";
const sockets: WebSocket[] = [];

async function spawnProcess(kind: "chat-node" | "gateway", extra: Record<string, string> = {}): Promise<ServiceProcess> {
  const service = await startChatService(env, kind, {
    name: `gateway-test-${kind}-${procs.length + 1}`,
    extra: { CHAT_DB_POOL_SIZE: "5", CHAT_MAX_MESSAGE_BYTES: "60000", CHAT_CORS_ORIGINS: "http://allowed.test", ...extra },
  });
  procs.push(service);
  return service;
}

/** Opens a socket; collects frames; resolves on open or rejects with the HTTP status. */
function open(token: string | null, options: { origin?: string; url?: string; query?: boolean } = {}) {
  const base = `${(options.url ?? gwUrl).replace("http", "ws")}/ws${options.query && token ? `?token=${token}` : ""}`;
  const protocols = token && !options.query ? ["chat.v1.json", `bearer.${token}`] : ["chat.v1.json"];
  const ws = new WebSocket(base, protocols, options.origin ? { origin: options.origin } : {});
  sockets.push(ws);
  const frames: any[] = [];
  let closeCode = 0;
  ws.on("message", (d, isBinary) => { if (!isBinary) frames.push(JSON.parse(String(d))); });
  ws.on("close", (code) => { closeCode = code; });
  const opened = new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("unexpected-response", (_req, res) => reject(Object.assign(new Error("refused"), { status: res.statusCode })));
    ws.once("error", reject);
  });
  return { ws, frames, opened, closeCode: () => closeCode, send: (f: unknown) => ws.send(JSON.stringify(f)) };
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${gwUrl}/metrics`)).text();
  return text.split("\n").filter((l) => l.startsWith(name)).reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
}

let alice: TestUser;
let bob: TestUser;
let carol: TestUser;
let group = "";

before(async () => {
  env = await createTestEnv();
  nodeUrl = (await spawnProcess("chat-node")).url;
  gwUrl = (await spawnProcess("gateway", { CHAT_GATEWAY_API_URL: nodeUrl })).url;
  [alice, bob, carol] = await Promise.all([registerUser(nodeUrl, "a"), registerUser(nodeUrl, "b"), registerUser(nodeUrl, "c")]);
  group = (await alice.api.conversations.createConversation({
    kind: ConversationKind.GROUP, title: "g", memberUsernames: [bob.username, carol.username],
  })).conversation!.id;
});

after(async () => {
  for (const s of sockets) s.terminate();
  for (const p of procs) p.signal("SIGKILL");
  await clearRedisPrefix(env);
  await env?.close();
});

describe("gateway", { timeout: 110_000 }, () => {
  test("forged or expired tokens get 401 and foreign origins 403, before any upgrade", async () => {
    const status = async (c: ReturnType<typeof open>) => c.opened.then(() => 101, (e: { status?: number }) => e.status);
    assert.equal(await status(open(null)), 401);
    assert.equal(await status(open(`${alice.token.slice(0, -4)}AAAA`)), 401);
    const key = new TextEncoder().encode(env.config.jwtSecret);
    const expired = await new SignJWT({ username: alice.username }).setProtectedHeader({ alg: "HS256" }).setSubject(alice.id)
      .setIssuer("chat-system").setIssuedAt(Math.floor(Date.now() / 1000) - 3600).setExpirationTime(Math.floor(Date.now() / 1000) - 600).sign(key);
    assert.equal(await status(open(expired)), 401);
    assert.equal(await status(open(alice.token, { origin: "http://evil.test" })), 403);
    assert.equal(await status(open(alice.token, { origin: "http://allowed.test" })), 101);
    assert.equal(await status(open(alice.token, { query: true })), 101);
    assert.ok((await metric("chat_gateway_upgrades_refused_total")) >= 4);
  });

  test("malformed frames get an error frame, oversized ones a close; the gateway keeps serving", async () => {
    const c = open(alice.token);
    await c.opened;
    c.ws.send("not json");
    c.send({ type: "join", conversationId: "nope", ref: "r1" });
    c.send({ type: "launch", ref: "r2" });
    c.ws.send(Buffer.from([1, 2, 3]));
    await eventually(() => c.frames.filter((f) => f.type === "error").length >= 4);
    assert.deepEqual(c.frames.filter((f) => f.ref).map((f) => [f.ref, f.code]), [["r1", "invalid_argument"], ["r2", "invalid_argument"]]);
    c.ws.send("x".repeat(70 * 1024));
    await eventually(() => c.closeCode() === 1009);
    assert.ok((await fetch(`${gwUrl}/health`)).ok);
    assert.equal((await fetch(`${gwUrl}/ready`)).status, 200);
  });

  test("non-members cannot join; a removed member stops receiving at once", async () => {
    const outsider = await registerUser(nodeUrl, "o");
    const o = open(outsider.token);
    await o.opened;
    o.send({ type: "join", conversationId: group, ref: "j" });
    await eventually(() => o.frames.find((f) => f.ref === "j"));
    assert.equal(o.frames.find((f) => f.ref === "j").code, "not_found");

    const dave = await registerUser(nodeUrl, "d");
    await alice.api.conversations.addMembers({ conversationId: group, userIds: [dave.id] });
    const d = open(dave.token);
    await d.opened;
    d.send({ type: "join", conversationId: group, lastSeq: "0", ref: "j" });
    await eventually(() => d.frames.find((f) => f.type === "joined"));
    await alice.api.conversations.removeMember({ conversationId: group, userId: dave.id });
    await eventually(() => d.frames.find((f) => f.type === "message:new" && f.message.kind === "MESSAGE_KIND_MEMBER_REMOVED"));
    await alice.api.messages.sendMessage({ conversationId: group, body: "after removal" });
    const a = open(alice.token);
    await a.opened;
    a.send({ type: "join", conversationId: group, ref: "j" });
    await eventually(() => a.frames.find((f) => f.type === "joined"));
    await alice.api.messages.sendMessage({ conversationId: group, body: "later" });
    await eventually(() => a.frames.find((f) => f.type === "message:new" && f.message.body === "later"));
    assert.equal(d.frames.filter((f) => f.type === "message:new" && /after removal|later/.test(f.message.body ?? "")).length, 0);
  });

  test("typing reaches the others, throttled, expires by itself, never stored", async () => {
    const countRows = async () => env.db.oneFirst(sql.type(z.object({ n: z.number() }))`
      SELECT ((SELECT count(*) FROM messages) + (SELECT count(*) FROM outbox))::int AS n`);
    const rowsBefore = await countRows();
    const a = open(alice.token), b = open(bob.token);
    await Promise.all([a.opened, b.opened]);
    for (const c of [a, b]) c.send({ type: "join", conversationId: group, ref: "j" });
    await eventually(() => a.frames.find((f) => f.type === "joined") && b.frames.find((f) => f.type === "joined"));
    for (let i = 0; i < 10; i++) a.send({ type: "typing", conversationId: group, typing: true });
    await eventually(() => b.frames.find((f) => f.type === "typing" && f.typing === true));
    // Expiry: typing=false arrives by itself (~5 s) without any further frame from alice.
    await eventually(() => b.frames.find((f) => f.type === "typing" && f.typing === false), { timeoutMs: 8_000 });
    assert.equal(b.frames.filter((f) => f.type === "typing" && f.typing === true).length, 1, "throttled to one");
    assert.equal(a.frames.filter((f) => f.type === "typing").length, 0, "not echoed to the typist");
    assert.equal(await countRows(), rowsBefore, "typing is never stored");
    const redis = new Redis(env.config.redisUrl);
    const tail = (await redis.xrange(`${env.redisPrefix}:delivery:tail:${group}`, "-", "+")) as [string, string[]][];
    redis.disconnect();
    assert.ok(tail.every(([id]) => !id.startsWith("0-")), "typing never enters the tail");
  });

  test("a client that stops reading is cut off with 4101 and gateway memory stays bounded", async () => {
    const slow = open(bob.token);
    await slow.opened;
    slow.send({ type: "join", conversationId: group, ref: "j" });
    await eventually(() => slow.frames.find((f) => f.type === "joined"));
    const rssBefore = await metric("process_resident_memory_bytes");
    (slow.ws as unknown as { _socket: net.Socket })._socket.pause();
    const body = "x".repeat(59_000);
    for (let i = 0; i < 400 && (await metric('chat_gateway_closes_total{code="4101"}')) === 0; i += 20) {
      await Promise.all(Array.from({ length: 20 }, () => alice.api.messages.sendMessage({ conversationId: group, body })));
    }
    await eventually(async () => (await metric('chat_gateway_closes_total{code="4101"}')) >= 1, { timeoutMs: 10_000 });
    const rssAfter = await metric("process_resident_memory_bytes");
    assert.ok(rssAfter - rssBefore < 64 * 1024 * 1024, `gateway rss grew by ${(rssAfter - rssBefore) / 1e6} MB`);
    (slow.ws as unknown as { _socket: net.Socket })._socket.resume();
    await eventually(() => slow.closeCode() === 4101, { timeoutMs: 10_000 });
  });

  test("SIGTERM drains: sockets are closed with 4100 and the process exits", async () => {
    const extra = await spawnProcess("gateway", { CHAT_GATEWAY_API_URL: nodeUrl });
    const cs = Array.from({ length: 20 }, () => open(carol.token, { url: extra.url }));
    await Promise.all(cs.map((c) => c.opened));
    extra.signal("SIGTERM");
    await eventually(() => cs.every((c) => c.closeCode() === 4100), { timeoutMs: 10_000 });
    await eventually(() => extra.child.exitCode === 0, { timeoutMs: 10_000 });
  });
});
