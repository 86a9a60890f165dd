/**
 * Kafka mirror: relays the transactional outbox (rows written with the events they describe) to
 * Kafka, at least once, keyed so each partition holds a conversation's events in seq order.
 * Payload schemas: docs/kafka.md.
 */
export { createKafkaMirror, mirroredTopics } from "./kafka-mirror.js";
export type { KafkaMirrorOptions } from "./kafka-mirror.js";
export { relayOutboxShard, measureOutboxLag, pruneSentOutbox } from "./outbox-store.js";
export type { OutboxRow } from "./outbox-store.js";
