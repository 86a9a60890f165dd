import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Kafka, logLevel, type Consumer } from "kafkajs";
import { sql } from "slonik";
import { z } from "zod";
import { topics } from "../internal/actor/index.js";
import { startChatNode, startPresence, type ChatNode } from "../internal/app/index.js";
import { ConversationKind } from "../internal/gen/chat/v1/common_pb.js";
import { createLogger } from "../internal/telemetry/index.js";
import { createTestEnv, eventually, freePort, registerUser, serviceEnv, startService, type ServiceProcess, type TestEnv } from "./support/index.js";

const BROKERS = process.env.KAFKA_BROKERS || "127.0.0.1:19092";
const CONVERSATIONS = 12;
const MESSAGES = 900;

let env: TestEnv;
let node: ChatNode;
let baseUrl: string;
let consumer: Consumer | undefined;
const topicPrefix = `t${randomBytes(4).toString("hex")}.`;
const mirrors = new Set<ServiceProcess>();
/** Set on the first failure and in after(): load loops stop, so no mirror is spawned once we clean up. */
let aborted = false;

let mirrorCount = 0;

/** A real kafka-mirror process (its `url` serves /metrics and /health). */
async function spawnMirror(brokers = BROKERS): Promise<ServiceProcess> {
  const port = await freePort();
  const mirror = await startService("kafka-mirror", {
    name: `mirror-${++mirrorCount}`,
    port,
    ready: "none",
    env: serviceEnv(env, {
      KAFKA_BROKERS: brokers,
      CHAT_KAFKA_TOPIC_PREFIX: topicPrefix,
      CHAT_KAFKA_PARTITIONS: "4",
      CHAT_MIRROR_METRICS_PORT: String(port),
      CHAT_MIRROR_BATCH: "40",
      CHAT_MIRROR_SHARDS: "4",
      CHAT_MIRROR_POLL_MS: "20",
    }),
  });
  mirrors.add(mirror);
  void mirror.exited.then(() => mirrors.delete(mirror));
  return mirror;
}

const unsentCount = async () => Number(await env.db.oneFirst(sql.type(z.object({ n: z.bigint() }))`SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL`));

before(async () => {
  env = await createTestEnv();
  node = await startChatNode(env.config, createLogger("test", "silent"));
  baseUrl = `http://127.0.0.1:${node.port}`;
});

after(async () => {
  aborted = true;
  await Promise.all([...mirrors].map((m) => m.kill()));
  await consumer?.disconnect().catch(() => {});
  if (env) {
    const kafka = new Kafka({ clientId: "mirror-test-cleanup", brokers: BROKERS.split(","), logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect().then(() => admin.deleteTopics({ topics: Object.values(topics).map((t) => topicPrefix + t) })).catch(() => {});
    await admin.disconnect().catch(() => {});
  }
  await node?.close();
  await env?.close();
});

describe("kafka mirror", () => {
  test("off when KAFKA_BROKERS is empty: idles (does not exit) and says so on /health", async () => {
    const mirror = await spawnMirror("");
    const health = await eventually(async () => {
      const res = await fetch(`${mirror.url}/health`);
      return res.ok ? ((await res.json()) as { status: string }) : null;
    }, { timeoutMs: 20_000, intervalMs: 200 });
    assert.equal(health!.status, "disabled");
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(mirror.child.exitCode, null);
    await mirror.kill();
  });

  test("every outbox event reaches Kafka, keyed by conversation in seq order, across a kill -9 and two mirrors at once", { timeout: 150_000 }, async () => {
    const users = [await registerUser(baseUrl, "mir"), await registerUser(baseUrl, "mir"), await registerUser(baseUrl, "mir")];
    const conversations: string[] = [];
    for (let c = 0; c < CONVERSATIONS; c++) {
      const res = await users[0]!.api.conversations.createConversation({ kind: ConversationKind.GROUP, title: `m${c}`, memberIds: [users[1]!.id, users[2]!.id] });
      conversations.push(res.conversation!.id);
    }
    let first = await spawnMirror();
    let second: ServiceProcess | undefined;
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      for (;;) {
        const i = next++;
        if (i >= MESSAGES || aborted) return;
        if (i === 250) {
          // Mid-stream, once it is relaying: rows claimed or produced but not yet marked come again.
          await eventually(async () => Number(await env.db.oneFirst(sql.type(z.object({ n: z.bigint() }))`
            SELECT count(*) AS n FROM outbox WHERE sent_at IS NOT NULL`)) > 0, { timeoutMs: 30_000, intervalMs: 20 });
          await first.kill();
        }
        if (i === 400) first = await spawnMirror();
        if (i === 450) second = await spawnMirror(); // two mirrors at once from here on
        const conversationId = conversations[i % CONVERSATIONS]!;
        const user = users[i % 3]!;
        await user.api.messages.sendMessage({ conversationId, body: `m${i}` });
        if (i % 50 === 0) await users[0]!.api.conversations.updateConversation({ conversationId, title: `t${i}` });
        if (i % 10 === 0) await users[(i + 1) % 3]!.api.messages.markRead({ conversationId, seq: 1n << 40n });
      }
    }).map((p) => p.catch((error: unknown) => { aborted = true; throw error; })));
    assert.ok(second);
    // A presence change (a heartbeat through the presence service) adds the fourth topic.
    const presence = await startPresence(env.config, createLogger("presence", "silent"));
    try {
      const beat = await fetch(`http://127.0.0.1:${presence.port}/heartbeat`, {
        method: "POST", headers: { authorization: `Bearer ${users[2]!.token}`, "content-type": "application/json" }, body: "{}",
      });
      assert.equal(beat.status, 200);
      await eventually(async () => Number(await env.db.oneFirst(sql.type(z.object({ n: z.bigint() }))`
        SELECT count(*) AS n FROM outbox WHERE topic = ${topics.presenceChanged} AND key = ${users[2]!.id}`)) > 0, { timeoutMs: 15_000 });
    } finally {
      await presence.close();
    }
    await eventually(async () => (await unsentCount()) === 0, { timeoutMs: 60_000, intervalMs: 200 });

    // Lag shows in /metrics and drains to 0.
    const metrics = await (await fetch(`${second.url}/metrics`)).text();
    assert.match(metrics, /^chat_mirror_outbox_unsent_rows 0$/m);
    assert.match(metrics, /^chat_mirror_outbox_oldest_unsent_age_seconds 0$/m);
    assert.equal((await fetch(`${second.url}/health`)).status, 200);

    const rows = await env.db.any(sql.type(z.object({ topic: z.string(), key: z.string(), event_id: z.string(), payload: z.any() }))`
      SELECT topic, key, event_id, payload FROM outbox ORDER BY id`);
    assert.ok(rows.length > MESSAGES);

    // Consume everything from a fresh group.
    type Seen = { topic: string; partition: number; key: string; eventId: string; value: any };
    const seen: Seen[] = [];
    const kafka = new Kafka({ clientId: "mirror-test", brokers: BROKERS.split(","), logLevel: logLevel.NOTHING });
    consumer = kafka.consumer({ groupId: `${topicPrefix}check`, sessionTimeout: 10_000, heartbeatInterval: 1000 });
    await consumer.connect();
    await consumer.subscribe({ topics: Object.values(topics).map((t) => topicPrefix + t), fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ topic, partition, message }) => {
        seen.push({
          topic: topic.slice(topicPrefix.length), partition, key: message.key!.toString(),
          eventId: message.headers!["event-id"]!.toString(), value: JSON.parse(message.value!.toString()),
        });
      },
    });
    const wanted = new Set(rows.map((r) => `${r.topic}|${r.event_id}`));
    await eventually(() => {
      const got = new Set(seen.map((s) => `${s.topic}|${s.eventId}`));
      return [...wanted].every((w) => got.has(w));
    }, { timeoutMs: 60_000, intervalMs: 250 });

    // Keyed by conversation (presence by user), value = the versioned payload.
    const byEvent = new Map(rows.map((r) => [`${r.topic}|${r.event_id}`, r]));
    for (const s of seen) {
      const row = byEvent.get(`${s.topic}|${s.eventId}`)!;
      assert.ok(row, `unexpected message ${s.eventId}`);
      assert.equal(s.key, row.key);
      assert.deepEqual(s.value, row.payload);
      assert.equal(s.value.version, 1);
    }
    // chat.message.created: each conversation in one partition, seqs in order (duplicates from
    // the crash may repeat an earlier stretch; first occurrences are 1, 2, 3, … without gaps).
    const created = seen.filter((s) => s.topic === topics.messageCreated);
    for (const conversationId of conversations) {
      const mine = created.filter((s) => s.key === conversationId);
      assert.equal(new Set(mine.map((s) => s.partition)).size, 1, "one partition per conversation");
      let expected = 1n;
      for (const s of mine) {
        const seq = BigInt(s.value.seq);
        if (seq < expected) continue; // a redelivered duplicate
        assert.equal(seq, expected, `conversation ${conversationId}: seq ${seq} arrived before ${expected}`);
        expected += 1n;
      }
      const lastSeq = await env.db.oneFirst(sql.type(z.object({ last_seq: z.bigint() }))`SELECT last_seq FROM conversations WHERE id = ${conversationId}`);
      assert.equal(expected - 1n, lastSeq);
    }
    assert.deepEqual(new Set(seen.map((s) => s.topic)), new Set(Object.values(topics)), "all four topics carry events");
    const duplicates = seen.length - new Set(seen.map((s) => `${s.topic}|${s.eventId}`)).size;
    console.log(`# mirror: ${rows.length} outbox rows, ${seen.length} Kafka messages (${duplicates} duplicates after the kill -9)`);
  });
});
