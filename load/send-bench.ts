/**
 * SendMessage throughput and latency through the public API (Connect over HTTP/1.1 keep-alive),
 * closed loop. Starts its own chat-node processes on a fresh database, so one command reproduces
 * the figures:
 *
 *   node --import tsx load/send-bench.ts            # the standard set, prints a table and JSON
 *   SCENARIOS=1x100 SECONDS=10 CONCURRENCY=64 node --import tsx load/send-bench.ts
 *
 * A scenario `<nodes>x<conversations>` runs <nodes> chat-nodes and spreads sends over
 * <conversations> conversations, each send to a random node (so with 3 nodes ~2/3 are forwarded).
 * Rate limits are off for the run. Imports only internal/gen.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as net from "node:net";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import hdr from "hdr-histogram-js";
import pg from "pg";
import { AuthService } from "../internal/gen/chat/v1/auth_pb.js";
import { ConversationKind } from "../internal/gen/chat/v1/common_pb.js";
import { ConversationService } from "../internal/gen/chat/v1/conversation_pb.js";
import { MessageService } from "../internal/gen/chat/v1/message_pb.js";

const ROOT = new URL("../", import.meta.url).pathname;
const DATABASE_URL = process.env.DATABASE_URL ?? "postgresql://chatuser:chatpass@localhost:5432/chatdb";
const SECONDS = Number(process.env.SECONDS ?? 10);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 64);
const SCENARIOS = (process.env.SCENARIOS ?? "1x1,1x100,3x100").split(",");

const freePort = () => new Promise<number>((resolve) => {
  const s = net.createServer().listen(0, "127.0.0.1", () => {
    const { port } = s.address() as net.AddressInfo;
    s.close(() => resolve(port));
  });
});

async function freshDatabase(): Promise<string> {
  const name = `bench_${Date.now()}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

async function startNodes(count: number, databaseUrl: string): Promise<{ urls: string[]; children: ChildProcess[] }> {
  const prefix = `bench${Date.now().toString(36)}`;
  const urls: string[] = [];
  const children: ChildProcess[] = [];
  for (let i = 0; i < count; i++) {
    const port = await freePort();
    children.push(spawn(process.execPath, ["--import", "tsx", "cmd/chat-node/main.ts"], {
      cwd: ROOT,
      stdio: "ignore",
      env: {
        ...process.env, DATABASE_URL: databaseUrl, CHAT_REDIS_PREFIX: prefix, CHAT_NODE_ID: `bench-${i + 1}`,
        CHAT_NODE_PORT: String(port), CHAT_NODE_GRPC_PORT: String(await freePort()), CHAT_RATELIMIT_ENABLED: "false",
        LOG_LEVEL: "warn",
      },
    }));
    urls.push(`http://127.0.0.1:${port}`);
  }
  for (const url of urls) {
    for (let tries = 0; ; tries++) {
      if ((await fetch(`${url}/ready`).then((r) => r.ok, () => false))) break;
      if (tries > 300) throw new Error(`${url} never became ready`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  await new Promise((r) => setTimeout(r, 1_500)); // let every node see the full ring
  return { urls, children };
}

const clientsFor = (url: string, token?: string) => {
  const transport = createConnectTransport({
    baseUrl: url, httpVersion: "1.1", useBinaryFormat: true,
    interceptors: token ? [(next) => async (req) => { req.header.set("authorization", `Bearer ${token}`); return next(req); }] : [],
  });
  return { auth: createClient(AuthService, transport), conversations: createClient(ConversationService, transport), messages: createClient(MessageService, transport) };
};

async function metric(urls: string[], name: string): Promise<number> {
  let total = 0;
  for (const url of urls) {
    const text = await (await fetch(`${url}/metrics`)).text();
    for (const line of text.split("\n")) if (line.startsWith(name)) total += Number(line.split(" ").at(-1));
  }
  return total;
}

async function scenario(nodes: number, conversations: number) {
  const databaseUrl = await freshDatabase();
  const { urls, children } = await startNodes(nodes, databaseUrl);
  try {
    const users = await Promise.all([0, 1].map(async (i) => {
      const res = await clientsFor(urls[0]!).auth.register({ username: `bench${i}${Date.now().toString(36)}`, password: "benchmark password" });
      return { id: res.user!.id, token: res.token };
    }));
    const owner = clientsFor(urls[0]!, users[0]!.token);
    const ids: string[] = [];
    for (let i = 0; i < conversations; i++) {
      const c = await owner.conversations.createConversation({ kind: ConversationKind.GROUP, title: `bench ${i}`, memberIds: [users[1]!.id] });
      ids.push(c.conversation!.id);
    }
    const senders = urls.flatMap((url) => users.map((u) => clientsFor(url, u.token)));
    const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
    const forwardedBefore = await metric(urls, 'chat_forwarded_calls_total{target="remote"}');
    const localBefore = await metric(urls, 'chat_forwarded_calls_total{target="local"}');
    let sent = 0;
    let errors = 0;
    const end = Date.now() + SECONDS * 1000;
    await Promise.all(Array.from({ length: CONCURRENCY }, async (_, w) => {
      for (let n = 0; Date.now() < end; n++) {
        const client = senders[Math.floor(Math.random() * senders.length)]!;
        const started = performance.now();
        try {
          await client.messages.sendMessage({ conversationId: ids[(w + n) % ids.length]!, body: `bench ${w}-${n}`, idempotencyKey: `${w}-${n}` });
          histogram.recordValue(Math.round((performance.now() - started) * 1000));
          sent++;
        } catch {
          errors++;
        }
      }
    }));
    const remote = (await metric(urls, 'chat_forwarded_calls_total{target="remote"}')) - forwardedBefore;
    const local = (await metric(urls, 'chat_forwarded_calls_total{target="local"}')) - localBefore;
    const txs = await metric(urls, "chat_group_commit_conversations_count");
    const batches = await metric(urls, "chat_group_commit_conversations_sum");
    return {
      scenario: `${nodes} node(s) x ${conversations} conversation(s)`,
      concurrency: CONCURRENCY,
      seconds: SECONDS,
      sendsPerSecond: Math.round(sent / SECONDS),
      errors,
      p50ms: histogram.getValueAtPercentile(50) / 1000,
      p95ms: histogram.getValueAtPercentile(95) / 1000,
      p99ms: histogram.getValueAtPercentile(99) / 1000,
      forwardedShare: remote + local > 0 ? Number((remote / (remote + local)).toFixed(3)) : 0,
      actorBatchesPerTransaction: txs > 0 ? Number((batches / txs).toFixed(2)) : 0,
    };
  } finally {
    for (const child of children) child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

const results = [];
for (const s of SCENARIOS) {
  const [nodes, conversations] = s.split("x").map(Number);
  const result = await scenario(nodes!, conversations!);
  console.log(`${result.scenario}: ${result.sendsPerSecond} sends/s, p50 ${result.p50ms} ms, p99 ${result.p99ms} ms, forwarded ${(result.forwardedShare * 100).toFixed(0)}%, ${result.actorBatchesPerTransaction} actor batches/tx, errors ${result.errors}`);
  results.push(result);
}
console.log(JSON.stringify(results, null, 2));
process.exit(0);
