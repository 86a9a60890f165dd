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
 * Rate limits are off for the run. The cluster (fresh database, Redis prefix, processes) comes from
 * load/cluster.ts, shared with the WebSocket and ghz load generators. Imports only internal/gen.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import hdr from "hdr-histogram-js";
import { AuthService } from "../internal/gen/chat/v1/auth_pb.js";
import { ConversationKind } from "../internal/gen/chat/v1/common_pb.js";
import { ConversationService } from "../internal/gen/chat/v1/conversation_pb.js";
import { MessageService } from "../internal/gen/chat/v1/message_pb.js";
import { runExitHooks, scrapeMetric, startCluster } from "./cluster.js";

const SECONDS = Number(process.env.SECONDS ?? 10);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 64);
const SCENARIOS = (process.env.SCENARIOS ?? "1x1,1x100,3x100").split(",");

const clientsFor = (url: string, token?: string) => {
  const transport = createConnectTransport({
    baseUrl: url, httpVersion: "1.1", useBinaryFormat: true,
    interceptors: token ? [(next) => async (req) => { req.header.set("authorization", `Bearer ${token}`); return next(req); }] : [],
  });
  return { auth: createClient(AuthService, transport), conversations: createClient(ConversationService, transport), messages: createClient(MessageService, transport) };
};

async function scenario(nodes: number, conversations: number) {
  const cluster = await startCluster({ name: "send", chatNodes: nodes, gateways: 0 });
  const urls = cluster.nodes.map((n) => n.url);
  const metric = (name: string) => scrapeMetric(cluster.nodes, name);
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
    const forwardedBefore = await metric('chat_forwarded_calls_total{target="remote"}');
    const localBefore = await metric('chat_forwarded_calls_total{target="local"}');
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
    const remote = (await metric('chat_forwarded_calls_total{target="remote"}')) - forwardedBefore;
    const local = (await metric('chat_forwarded_calls_total{target="local"}')) - localBefore;
    const txs = await metric("chat_group_commit_conversations_count");
    const batches = await metric("chat_group_commit_conversations_sum");
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
    await cluster.stop();
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
await runExitHooks();
process.exit(0);
