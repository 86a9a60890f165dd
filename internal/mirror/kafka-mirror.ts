import { Kafka, Partitioners, logLevel, type Producer } from "kafkajs";
import { topics } from "../actor/index.js";
import type { Database } from "../storage/index.js";
import type { Logger } from "../telemetry/index.js";
import { relayOutboxShard, type OutboxRow } from "./outbox-store.js";

export type KafkaMirrorOptions = {
  db: Database;
  logger: Logger;
  brokers: string[];
  clientId: string;
  /** Prepended to every topic name (tests, tenants). */
  topicPrefix: string;
  partitions: number;
  batch: number;
  shards: number;
  pollMs: number;
  onRelayed?: (rows: OutboxRow[]) => void;
  onError?: () => void;
};

/** The topics the mirror creates on start (names before the prefix). */
export const mirroredTopics: readonly string[] = Object.values(topics);

const kafkaLogLevel = (logger: Logger) => (logger.isLevelEnabled("debug") ? logLevel.INFO : logLevel.NOTHING);

/**
 * Relays the PostgreSQL outbox to Kafka: idempotent producer (acks=all, one request in flight, so
 * a partition never reorders), message key = the row's key (conversation id, or user id for
 * presence) so a partition holds a key's events in seq order, header `event-id` for consumer
 * dedupe, value = the row's versioned JSON payload. Rows are marked sent only after Kafka
 * acknowledged them; a crash in between re-sends them (at least once).
 */
export function createKafkaMirror(options: KafkaMirrorOptions) {
  const { db, logger } = options;
  const kafka = new Kafka({
    clientId: options.clientId,
    brokers: options.brokers,
    logLevel: kafkaLogLevel(logger),
    connectionTimeout: 5_000,
    requestTimeout: 15_000,
    retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 5_000 },
  });
  const producer: Producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  const topicName = (topic: string) => `${options.topicPrefix}${topic}`;
  let stopped = false;
  let wake: (() => void) | null = null;
  let healthy = false;
  let lastSuccessMs = 0;

  async function ensureTopics(): Promise<void> {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const created = await admin.createTopics({
        waitForLeaders: true,
        topics: mirroredTopics.map((t) => ({ topic: topicName(t), numPartitions: options.partitions })),
      });
      logger.info({ created, topics: mirroredTopics.map(topicName) }, "kafka topics ensured");
    } finally {
      await admin.disconnect();
    }
  }

  async function produce(rows: OutboxRow[]): Promise<void> {
    const byTopic = new Map<string, OutboxRow[]>();
    for (const row of rows) {
      const list = byTopic.get(row.topic) ?? [];
      list.push(row);
      byTopic.set(row.topic, list);
    }
    await producer.sendBatch({
      acks: -1,
      timeout: 10_000,
      topicMessages: [...byTopic].map(([topic, list]) => ({
        topic: topicName(topic),
        messages: list.map((r) => ({
          key: r.key,
          value: r.payload,
          timestamp: String(r.createdAtMs),
          headers: { "event-id": r.eventId, "content-type": "application/json", "outbox-id": r.id.toString() },
        })),
      })),
    });
    options.onRelayed?.(rows);
  }

  /** One pass over every shard (starting at a random one); returns the rows relayed. */
  async function pass(): Promise<number> {
    let total = 0;
    const start = Math.floor(Math.random() * options.shards);
    for (let i = 0; i < options.shards && !stopped; i++) {
      const index = (start + i) % options.shards;
      for (;;) {
        const n = await relayOutboxShard(db, { index, count: options.shards, limit: options.batch }, produce);
        total += n;
        if (n < options.batch || stopped) break;
      }
    }
    return total;
  }

  const sleep = (ms: number) => new Promise<void>((resolve) => {
    const timer = setTimeout(() => { wake = null; resolve(); }, ms);
    wake = () => { clearTimeout(timer); wake = null; resolve(); };
  });

  return {
    /** Connected and the last pass succeeded within a while. */
    get healthy(): boolean {
      return healthy;
    },
    get lastSuccessMs(): number {
      return lastSuccessMs;
    },
    /** Creates the topics, connects, then relays until stop(); failures back off and retry. */
    async run(): Promise<void> {
      let backoffMs = 200;
      while (!stopped) {
        try {
          await ensureTopics();
          await producer.connect();
          break;
        } catch (error) {
          logger.warn({ err: error, brokers: options.brokers }, "kafka not reachable yet, retrying");
          options.onError?.();
          await sleep(backoffMs);
          backoffMs = Math.min(backoffMs * 2, 5_000);
        }
      }
      logger.info({ brokers: options.brokers, shards: options.shards, batch: options.batch }, "kafka mirror relaying");
      backoffMs = 200;
      while (!stopped) {
        try {
          const n = await pass();
          healthy = true;
          lastSuccessMs = Date.now();
          backoffMs = 200;
          if (n === 0) await sleep(options.pollMs);
        } catch (error) {
          if (stopped) break;
          healthy = false;
          options.onError?.();
          logger.warn({ err: error }, "outbox relay failed, retrying");
          await sleep(backoffMs);
          backoffMs = Math.min(backoffMs * 2, 5_000);
        }
      }
      await producer.disconnect().catch(() => {});
    },
    /** Asks run() to return after the batch in flight (run() then disconnects the producer). */
    stop(): void {
      stopped = true;
      wake?.();
    },
  };
}
