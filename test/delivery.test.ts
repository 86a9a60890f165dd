/**
 * Delivery end to end, multi-process: 2 chat-nodes and 2 gateways as real child processes.
 * 200 WebSocket clients in 50 conversations receive every event exactly once and in seq order,
 * identical to PostgreSQL — across a kill -9 of a gateway, a Redis wipe of our prefix, and through
 * gRPC Subscribe with resume.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { sql } from "slonik";
import { WebSocket } from "ws";
import { z } from "zod";
import { EventService } from "../internal/gen/chat/v1/event_service_pb.js";
import { ConversationKind } from "../internal/gen/chat/v1/common_pb.js";
import { apiClients, clearRedisPrefix, createTestEnv, eventually, registerUser, startChatService, type ServiceProcess, type TestEnv, type TestUser } from "./support/index.js";

let env: TestEnv;
const procs: ServiceProcess[] = [];
let nodes: ServiceProcess[] = [];
let gateways: ServiceProcess[] = [];

async function spawnProcess(kind: "chat-node" | "gateway", extra: Record<string, string> = {}): Promise<ServiceProcess> {
  const service = await startChatService(env, kind, { name: `delivery-${kind}-${procs.length + 1}`, extra: { CHAT_DB_POOL_SIZE: "6", ...extra } });
  procs.push(service);
  return service;
}

/** A client that holds, per conversation, every seq it was handed (across reconnects). */
class Client {
  ws!: WebSocket;
  readonly seqs = new Map<string, bigint[]>();
  readonly bodies = new Map<string, Map<bigint, string>>();
  closes: number[] = [];
  constructor(readonly userId: string, readonly token: string, readonly conversations: string[]) {
    for (const c of conversations) { this.seqs.set(c, []); this.bodies.set(c, new Map()); }
  }
  last(c: string): bigint {
    const s = this.seqs.get(c)!;
    return s.length ? s[s.length - 1]! : 0n;
  }
  async connect(gatewayUrl: string): Promise<void> {
    const ws = new WebSocket(`${gatewayUrl.replace("http", "ws")}/ws`, ["chat.v1.json", `bearer.${this.token}`]);
    this.ws = ws;
    ws.on("message", (data) => {
      const f = JSON.parse(String(data));
      if (f.type === "message:new") {
        this.seqs.get(f.conversationId)!.push(BigInt(f.seq));
        this.bodies.get(f.conversationId)!.set(BigInt(f.seq), f.message.body ?? "");
      }
    });
    ws.on("close", (code) => this.closes.push(code));
    ws.on("error", () => undefined);
    await new Promise<void>((resolve, reject) => { ws.once("open", () => resolve()); ws.once("error", reject); });
    const joined = this.conversations.map((c) => new Promise<void>((resolve, reject) => {
      const ref = `j-${c}`;
      const on = (data: unknown) => {
        const f = JSON.parse(String(data));
        if (f.ref !== ref) return;
        ws.off("message", on);
        if (f.type === "joined") resolve();
        else reject(new Error(JSON.stringify(f)));
      };
      ws.on("message", on);
    }));
    for (const c of this.conversations) ws.send(JSON.stringify({ type: "join", conversationId: c, lastSeq: String(this.last(c)), ref: `j-${c}` }));
    await Promise.all(joined);
  }
}

const lastSeqs = async (ids: string[]) =>
  new Map((await env.db.any(sql.type(z.object({ id: z.string(), last_seq: z.bigint() }))`
    SELECT id, last_seq FROM conversations WHERE id = ANY(${sql.array(ids, "uuid")})`)).map((r) => [r.id, r.last_seq]));

async function assertExact(clients: Client[], ids: string[]): Promise<void> {
  const want = await lastSeqs(ids);
  await eventually(() => clients.every((cl) => cl.conversations.every((c) => cl.last(c) >= want.get(c)!)), { timeoutMs: 30_000, intervalMs: 200 })
    .catch(() => { throw new Error("clients did not converge"); });
  const rows = await env.db.any(sql.type(z.object({ conversation_id: z.string(), seq: z.bigint(), body: z.string().nullable() }))`
    SELECT conversation_id, seq, body FROM messages WHERE conversation_id = ANY(${sql.array(ids, "uuid")}) ORDER BY conversation_id, seq`);
  const truth = new Map<string, Map<bigint, string>>();
  for (const r of rows) {
    if (!truth.has(r.conversation_id)) truth.set(r.conversation_id, new Map());
    truth.get(r.conversation_id)!.set(r.seq, r.body ?? "");
  }
  for (const cl of clients) {
    for (const c of cl.conversations) {
      const n = Number(want.get(c)!);
      const expected = Array.from({ length: n }, (_, i) => BigInt(i + 1));
      assert.deepEqual(cl.seqs.get(c), expected, `client ${cl.userId} conversation ${c}: exactly once, in order`);
      for (const [seq, body] of truth.get(c)!) assert.equal(cl.bodies.get(c)!.get(seq), body);
    }
  }
}

let users: TestUser[] = [];
let conversationIds: string[] = [];
let clients: Client[] = [];
const members = new Map<string, string[]>();

/** Sends `count` messages spread over the conversations through both chat-nodes, retrying (same key) until acked. */
async function sendLoad(count: number, concurrency = 16): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      const c = conversationIds[Math.floor(Math.random() * conversationIds.length)]!;
      const m = members.get(c)!;
      const senderId = m[Math.floor(Math.random() * m.length)];
      const sender = users.find((u) => u.id === senderId)!;
      const key = randomUUID();
      for (let attempt = 0; ; attempt++) {
        const node = nodes[Math.floor(Math.random() * nodes.length)]!;
        try {
          await apiClients(node.url, sender.token).messages.sendMessage({ conversationId: c, body: `m-${key}`, idempotencyKey: key });
          if (process.env.DEBUG_SENDS) console.log("sent", next);
          break;
        } catch (error) {
          if (process.env.DEBUG_SENDS) console.log("send failed", String(error));
          if (attempt > 30) throw error;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

before(async () => {
  env = await createTestEnv();
  nodes = [await spawnProcess("chat-node"), await spawnProcess("chat-node")];
  const apiUrls = nodes.map((n) => n.url).join(",");
  gateways = [await spawnProcess("gateway", { CHAT_GATEWAY_API_URL: apiUrls }), await spawnProcess("gateway", { CHAT_GATEWAY_API_URL: apiUrls })];
  for (let i = 0; i < 60; i += 10) users.push(...(await Promise.all(Array.from({ length: 10 }, () => registerUser(nodes[0]!.url, "d")))));
  // 20 direct and 30 group conversations.
  for (let i = 0; i < 20; i++) {
    const a = users[i]!, b = users[(i + 7) % users.length]!;
    const r = await a.api.conversations.createConversation({ kind: ConversationKind.DIRECT, memberUsernames: [b.username] });
    conversationIds.push(r.conversation!.id);
    members.set(r.conversation!.id, [a.id, b.id]);
  }
  for (let i = 0; i < 30; i++) {
    const group = Array.from({ length: 5 }, (_, k) => users[(i * 3 + k * 11) % users.length]!);
    const uniq = [...new Map(group.map((u) => [u.id, u])).values()];
    const r = await uniq[0]!.api.conversations.createConversation({ kind: ConversationKind.GROUP, title: `g${i}`, memberUsernames: uniq.slice(1).map((u) => u.username) });
    conversationIds.push(r.conversation!.id);
    members.set(r.conversation!.id, uniq.map((u) => u.id));
  }
  // 200 connections: users connect with several devices, alternating gateways.
  for (let i = 0; i < 200; i++) {
    const u = users[i % users.length]!;
    const mine = conversationIds.filter((c) => members.get(c)!.includes(u.id));
    clients.push(new Client(u.id, u.token, mine));
  }
  for (let i = 0; i < clients.length; i += 50) {
    await Promise.all(clients.slice(i, i + 50).map((c, k) => c.connect(gateways[(i + k) % 2]!.url)));
    if (process.env.DEBUG_SENDS) console.log("connected", i + 50);
  }
});

after(async () => {
  for (const c of clients) c.ws?.terminate();
  for (const p of procs) p.signal("SIGKILL");
  await clearRedisPrefix(env);
  await env?.close();
});

describe("delivery", { timeout: 120_000 }, () => {
  test("200 clients in 50 conversations receive every event exactly once, in order, identical to PostgreSQL", async () => {
    assert.equal(conversationIds.length, 50);
    const t0 = Date.now();
    if (process.env.DEBUG_SENDS) console.log("test 1 starts");
    await sendLoad(600);
    console.log("sent 600 in", Date.now() - t0, "ms");
    await assertExact(clients, conversationIds);
  });

  test("kill -9 a gateway mid-stream: its clients resume on the other with no gap and no duplicate", async () => {
    const victim = gateways[0]!;
    const load = sendLoad(400);
    await new Promise((r) => setTimeout(r, 300));
    victim.signal("SIGKILL");
    const orphans = clients.filter((c) => c.ws.url.includes(`:${victim.port}/`));
    assert.ok(orphans.length > 0);
    await eventually(() => orphans.every((c) => c.ws.readyState === WebSocket.CLOSED), { timeoutMs: 10_000 });
    await Promise.all(orphans.map((c) => c.connect(gateways[1]!.url)));
    await load;
    await assertExact(clients, conversationIds);
    // Replace the dead gateway for the next tests.
    gateways[0] = await spawnProcess("gateway", { CHAT_GATEWAY_API_URL: nodes.map((n) => n.url).join(",") });
  });

  test("Redis wiped (every key of our prefix) mid-stream: clients converge from PostgreSQL", async () => {
    const load = sendLoad(400);
    await new Promise((r) => setTimeout(r, 300));
    const deleted = await clearRedisPrefix(env);
    assert.ok(deleted > 0);
    await load;
    await assertExact(clients, conversationIds);
  });

  test("gRPC Subscribe delivers and resumes the same way", async () => {
    const u = users[0]!;
    const mine = conversationIds.filter((c) => members.get(c)!.includes(u.id));
    const got = new Map<string, bigint[]>(mine.map((c) => [c, []]));
    const client = createClient(EventService, createGrpcTransport({ baseUrl: nodes[1]!.url }));
    const headers = { authorization: `Bearer ${u.token}` };
    const consume = async (abort: AbortController, stopAfter: number) => {
      const lastSeqs: Record<string, bigint> = {};
      for (const [c, s] of got) lastSeqs[c] = s.length ? s[s.length - 1]! : 0n;
      let n = 0;
      try {
        for await (const res of client.subscribe({ conversationIds: mine, lastSeqs }, { headers, signal: abort.signal })) {
          const p = res.event?.payload;
          if (p?.case === "messageCreated") {
            got.get(p.value.message!.conversationId)!.push(p.value.message!.seq);
            if (++n >= stopAfter) abort.abort();
          }
        }
      } catch (error) {
        if (!abort.signal.aborted) throw error;
      }
    };
    // First session: replay from 0, cut off half way.
    const before = await lastSeqs(mine);
    const total = [...before.values()].reduce((x, y) => x + Number(y), 0);
    await consume(new AbortController(), Math.floor(total / 2));
    assert.ok([...got.values()].some((s) => s.length > 0));
    // Second session resumes from the last seqs while new messages are sent.
    const abort = new AbortController();
    const session = consume(abort, Number.MAX_SAFE_INTEGER);
    await sendLoad(100);
    const want = await lastSeqs(mine);
    await eventually(() => mine.every((c) => (got.get(c)!.at(-1) ?? 0n) >= want.get(c)!), { timeoutMs: 20_000 });
    abort.abort();
    await session;
    for (const c of mine) {
      assert.deepEqual(got.get(c), Array.from({ length: Number(want.get(c)!) }, (_, i) => BigInt(i + 1)), `subscribe ${c}`);
    }
  });
});
