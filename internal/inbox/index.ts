/**
 * Inbox: per (user, conversation) rows with unread count, mention count and last-message preview,
 * maintained by BullMQ jobs (one per committed event, job id `<conversationId>_<seq>`), plus
 * notifications for offline members through a pluggable sink, and a dead-letter queue.
 *
 * Exactness (DESIGN §2.6): counts derive from seqs — unread = text messages by others with
 * seq > last_read_seq — and every job recomputes them from PostgreSQL, so duplicate, retried, late
 * or lost jobs cannot make them drift; ListInbox applies the same rule at read time.
 */
export { createInboxQueue, createInboxSink, inboxJobId, notificationJobId, jobOptions } from "./inbox-queue.js";
export type { InboxQueue, InboxJobData, NotificationJobData, JobPolicy } from "./inbox-queue.js";
export { createInboxWorker, checkNoEviction } from "./inbox-worker.js";
export type { InboxWorker, InboxWorkerOptions, DeadLetter } from "./inbox-worker.js";
export { createLogSink, createWebhookSink } from "./notification-sink.js";
export type { Notification, NotificationSink } from "./notification-sink.js";
export { createInboxApi } from "./inbox-api.js";
export type { InboxApi } from "./inbox-api.js";
