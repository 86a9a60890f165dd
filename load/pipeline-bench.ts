/**
 * The background pipeline behind the send path: Kafka mirror throughput and commit→Kafka lag,
 * and inbox job throughput. Starts its own cluster (1 chat-node, an inbox worker, a Kafka mirror)
 * on a fresh database, Redis prefix and topic prefix:
 *
 *   node --import tsx load/pipeline-bench.ts                 # 20 s of closed-loop sends, 32 callers
 *   SECONDS=30 CONCURRENCY=64 node --import tsx load/pipeline-bench.ts
 *
 * Lag is Kafka arrival time minus the event's `createdAtMs` (stamped by the actor just before its
 * commit), read by a consumer from the beginning of `chat.message.created`. Needs a Kafka broker at
 * KAFKA_BROKERS (default 127.0.0.1:19092; `bash deploy/infra/infra.sh up --kafka`). Imports only
 * internal/gen.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import hdr from "hdr-histogram-js";
import { Kafka, logLevel } from "kafkajs";
import { MessageService } from "../internal/gen/chat/v1/message_pb.js";
import { scrapeMetric, sleep, startCluster } from "./cluster.js";
import { seedConversations, seedUsers } from "./seed.js";

const BROKERS = (process.env.KAFKA_BROKERS || "127.0.0.1:19092").split(",");
const SECONDS = Number(process.env.SECONDS ?? 20);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 32);
const topicPrefix = `bench${Date.now().toString(36)}.`;

const cluster = await startCluster({
  name: "pipeline", chatNodes: 1, gateways: 0, workers: true,
  env: { KAFKA_BROKERS: BROKERS.join(","), CHAT_KAFKA_TOPIC_PREFIX: topicPrefix },
});
const kafka = new Kafka({ clientId: "pipeline-bench", brokers: BROKERS, logLevel: logLevel.NOTHING });
const consumer = kafka.consumer({ groupId: `${topicPrefix}bench` });
try {
  const users = await seedUsers(cluster, 50, `p${Date.now().toString(36)}`);
  const conversations = await seedConversations(cluster, users, 5);
  const lag = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000, numberOfSignificantValueDigits: 3 });
  let consumed = 0;
  let firstAt = 0;
  let lastAt = 0;
  await consumer.connect();
  await consumer.subscribe({ topic: `${topicPrefix}chat.message.created`, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const payload = JSON.parse(message.value!.toString()) as { kind: string; createdAtMs: number };
      if (payload.kind !== "text") return;
      const now = Date.now();
      firstAt ||= now;
      lastAt = now;
      consumed++;
      lag.recordValue(Math.max(1, now - payload.createdAtMs));
    },
  });
  await sleep(3_000); // consumer group joined

  const inboxUrl = [cluster.workers[0]!];
  const inboxBefore = await scrapeMetric(inboxUrl, 'chat_inbox_jobs_total{queue="inbox"}');
  const senders = users.map((u) => createClient(MessageService, createConnectTransport({
    baseUrl: cluster.nodes[0]!.url, httpVersion: "1.1", useBinaryFormat: true,
    interceptors: [(next) => async (req) => { req.header.set("authorization", `Bearer ${u.token}`); return next(req); }],
  })));
  let sent = 0;
  const started = Date.now();
  const end = started + SECONDS * 1000;
  await Promise.all(Array.from({ length: CONCURRENCY }, async (_, w) => {
    for (let n = 0; Date.now() < end; n++) {
      const c = conversations[(w * 31 + n) % conversations.length]!;
      const sender = c.memberIndexes[n % c.memberIndexes.length]!;
      await senders[sender]!.sendMessage({ conversationId: c.id, body: `pipeline ${w}-${n} @${users[(sender + 1) % users.length]!.username}`, idempotencyKey: `${w}-${n}` });
      sent++;
    }
  }));
  const sendSeconds = (Date.now() - started) / 1000;
  const drainDeadline = Date.now() + 120_000;
  while (consumed < sent && Date.now() < drainDeadline) await sleep(200);
  let inboxDone = 0;
  const inboxStarted = Date.now();
  while (Date.now() < drainDeadline) {
    inboxDone = (await scrapeMetric(inboxUrl, 'chat_inbox_jobs_total{queue="inbox"}')) - inboxBefore;
    if (inboxDone >= sent) break;
    await sleep(200);
  }
  const inboxSeconds = sendSeconds + (Date.now() - inboxStarted) / 1000;
  const result = {
    sent,
    sendsPerSecond: Math.round(sent / sendSeconds),
    mirrored: consumed,
    mirrorEventsPerSecond: Math.round(consumed / Math.max(0.001, (lastAt - firstAt) / 1000)),
    commitToKafkaLagMs: { p50: lag.getValueAtPercentile(50), p95: lag.getValueAtPercentile(95), p99: lag.getValueAtPercentile(99), max: lag.maxValue },
    inboxJobs: inboxDone,
    inboxJobsPerSecond: Math.round(inboxDone / inboxSeconds),
  };
  console.log(`sent ${result.sent} (${result.sendsPerSecond}/s); mirror ${result.mirrorEventsPerSecond} events/s, commit→Kafka lag p50 ${result.commitToKafkaLagMs.p50} ms, p99 ${result.commitToKafkaLagMs.p99} ms; inbox ${result.inboxJobsPerSecond} jobs/s (${result.inboxJobs} jobs)`);
  console.log(JSON.stringify(result, null, 2));
} finally {
  await consumer.disconnect().catch(() => {});
  const admin = kafka.admin();
  await admin.connect().then(() => admin.listTopics()).then((all) => admin.deleteTopics({ topics: all.filter((t) => t.startsWith(topicPrefix)) })).catch(() => {});
  await admin.disconnect().catch(() => {});
  await cluster.stop();
}
process.exit(0);
