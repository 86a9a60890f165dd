import { UnrecoverableError } from "bullmq";
import type { Logger } from "../telemetry/index.js";
import type { NotificationJobData } from "./inbox-queue.js";

/**
 * A notification for a member who was offline when a text message arrived. Bodies are never
 * included (they may be encrypted at rest); receivers fetch the message with the user's token.
 * It is the notification job's data plus a stable id.
 */
export type Notification = NotificationJobData & {
  /** Stable per (conversation, seq, user): receivers dedupe on it (deliveries are at least once). */
  id: string;
  type: "message";
  createdAtMs: number;
};

/**
 * Where notifications go. `send` throws to ask for a retry (BullMQ backoff); throwing bullmq's
 * UnrecoverableError sends the job straight to the dead-letter queue.
 */
export type NotificationSink = {
  readonly name: string;
  send(notification: Notification): Promise<void>;
};

/** Logs each notification (the default when no webhook is configured). */
export function createLogSink(logger: Logger): NotificationSink {
  return {
    name: "log",
    async send(n) {
      logger.info({ notificationId: n.id, userId: n.userId, conversationId: n.conversationId, seq: n.seq }, "notification");
    },
  };
}

/**
 * POSTs each notification as JSON to `url` with an `Idempotency-Key` header (= notification id).
 * 2xx is success; 408, 429 and 5xx and network errors are retried; other 4xx are unrecoverable.
 */
export function createWebhookSink(url: string, timeoutMs: number): NotificationSink {
  return {
    name: "webhook",
    async send(n) {
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": n.id, "user-agent": "chat-inbox-worker" },
        body: JSON.stringify(n),
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return;
      if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
        throw new UnrecoverableError(`webhook answered ${res.status}`);
      }
      throw new Error(`webhook answered ${res.status}`);
    },
  };
}
