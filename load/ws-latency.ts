/**
 * WebSocket load generator: send→deliver latency and gateway memory per idle connection.
 *
 *   NODE_URL=http://127.0.0.1:3001 GATEWAY_URL=http://127.0.0.1:4000 \
 *   CLIENTS=1000 RATE=1000 SECONDS=20 node --import tsx load/ws-latency.ts
 *
 * Registers CLIENTS/2 users in direct pairs (each user connects twice, so every message goes to 4
 * sockets), measures the gateway's RSS/heap before and after the idle connections join, then sends
 * RATE messages/s for SECONDS as WebSocket `send` frames and records, at every receiving socket,
 * now − the send time carried in the body. Prints one JSON report. Imports only internal/gen.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import hdr from "hdr-histogram-js";
import { WebSocket } from "ws";
import { AuthService } from "../internal/gen/chat/v1/auth_pb.js";
import { ConversationKind } from "../internal/gen/chat/v1/common_pb.js";
import { ConversationService } from "../internal/gen/chat/v1/conversation_pb.js";

const NODE_URL = process.env.NODE_URL ?? "http://127.0.0.1:3001";
const GATEWAY_URL = process.env.GATEWAY_URL ?? "http://127.0.0.1:4000";
const CLIENTS = Number(process.env.CLIENTS ?? 1000);
const RATE = Number(process.env.RATE ?? 1000);
const SECONDS = Number(process.env.SECONDS ?? 20);

const transport = (token?: string) => createConnectTransport({
  baseUrl: NODE_URL, httpVersion: "1.1",
  interceptors: token ? [(next) => async (req) => { req.header.set("authorization", `Bearer ${token}`); return next(req); }] : [],
});
const auth = createClient(AuthService, transport());

async function gatewayMemory(): Promise<{ rss: number; heap: number }> {
  const text = await (await fetch(`${GATEWAY_URL}/metrics`)).text();
  const get = (name: string) => Number(text.split("\n").find((l) => l.startsWith(`${name} `))?.split(" ")[1] ?? NaN);
  return { rss: get("process_resident_memory_bytes"), heap: get("nodejs_heap_size_used_bytes") };
}

async function inBatches<T>(n: number, size: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i += size) out.push(...(await Promise.all(Array.from({ length: Math.min(size, n - i) }, (_, k) => fn(i + k)))));
  return out;
}

const run = Date.now().toString(36);
const users = await inBatches(CLIENTS / 2, 20, async (i) => {
  const res = await auth.register({ username: `l${run}${i}`, password: "correct horse battery" });
  return { id: res.user!.id, username: res.user!.username, token: res.token };
});
const pairs: { conversationId: string; members: typeof users }[] = [];
await inBatches(users.length / 2, 20, async (i) => {
  const [a, b] = [users[2 * i]!, users[2 * i + 1]!];
  const res = await createClient(ConversationService, transport(a.token)).createConversation({ kind: ConversationKind.DIRECT, memberUsernames: [b.username] });
  pairs.push({ conversationId: res.conversation!.id, members: [a, b] });
});

const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
let delivered = 0;
let acked = 0;
let errors = 0;
const memBefore = await gatewayMemory();
const sockets: { ws: WebSocket; conversationId: string }[] = [];
await inBatches(pairs.length, 25, async (i) => {
  const pair = pairs[i]!;
  for (const user of pair.members) {
    for (let device = 0; device < 2; device++) {
      const ws = new WebSocket(`${GATEWAY_URL.replace("http", "ws")}/ws`, ["chat.v1.json", `bearer.${user.token}`]);
      await new Promise<void>((resolve, reject) => { ws.once("open", () => resolve()); ws.once("error", reject); });
      const joined = new Promise<void>((resolve) => {
        ws.on("message", (data) => {
          const text = String(data);
          if (text.startsWith('{"type":"message:new"')) {
            const body = JSON.parse(text).message.body as string;
            const sentUs = Number(body.split(":")[0]);
            histogram.recordValue(Math.max(1, Math.round(performance.timeOrigin * 1000 + performance.now() * 1000 - sentUs)));
            delivered++;
          } else if (text.startsWith('{"type":"joined"')) resolve();
          else if (text.startsWith('{"type":"ack"')) acked++;
          else if (text.startsWith('{"type":"error"')) errors++;
        });
      });
      ws.send(JSON.stringify({ type: "join", conversationId: pair.conversationId }));
      await joined;
      sockets.push({ ws, conversationId: pair.conversationId });
    }
  }
});
await new Promise((r) => setTimeout(r, 3000));
const memIdle = await gatewayMemory();

// Paced sending: every 10 ms, RATE/100 send frames from random sockets.
const total = RATE * SECONDS;
let sent = 0;
const started = Date.now();
await new Promise<void>((resolve) => {
  const timer = setInterval(() => {
    const due = Math.min(total, Math.floor(((Date.now() - started) / 1000) * RATE));
    while (sent < due) {
      const s = sockets[Math.floor(Math.random() * sockets.length)]!;
      const nowUs = Math.round(performance.timeOrigin * 1000 + performance.now() * 1000);
      s.ws.send(JSON.stringify({ type: "send", conversationId: s.conversationId, body: `${nowUs}:x`, ref: String(sent) }));
      sent++;
    }
    if (sent >= total) { clearInterval(timer); resolve(); }
  }, 10);
});
const sendSeconds = (Date.now() - started) / 1000;
const expected = total * 4;
const deadline = Date.now() + 30_000;
while (delivered < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
const memLoaded = await gatewayMemory();
for (const s of sockets) s.ws.terminate();

console.log(JSON.stringify({
  clients: sockets.length,
  conversations: pairs.length,
  targetRate: RATE,
  sentPerSecond: Math.round(sent / sendSeconds),
  acked, errors, delivered, expectedDeliveries: expected,
  latencyMs: {
    p50: histogram.getValueAtPercentile(50) / 1000,
    p90: histogram.getValueAtPercentile(90) / 1000,
    p99: histogram.getValueAtPercentile(99) / 1000,
    max: histogram.maxValue / 1000,
  },
  gatewayMemory: {
    before: memBefore, idle: memIdle, afterLoad: memLoaded,
    rssPerIdleConnectionKiB: Math.round((memIdle.rss - memBefore.rss) / sockets.length / 1024 * 10) / 10,
    heapPerIdleConnectionKiB: Math.round((memIdle.heap - memBefore.heap) / sockets.length / 1024 * 10) / 10,
  },
}, null, 2));
process.exit(0);
