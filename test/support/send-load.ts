import { ConnectError } from "@connectrpc/connect";
import { apiClients, type ApiClients } from "./clients.js";
import type { AckedSend } from "./invariants.js";

export type LoadUser = { id: string; token: string };
export type LoadConversation = { id: string; members: LoadUser[] };

export type LoadResult = {
  acked: AckedSend[];
  /** Sends that never succeeded within the retry budget. */
  failed: { key: string; error: string }[];
  /** Retries needed (any error answered by a node, including connection refused). */
  retries: number;
  latenciesMs: number[];
};

/**
 * Closed-loop send load: `workers` loops each pick a random conversation and member and send
 * through a random node; a failed attempt is retried with the SAME idempotency key on another
 * random node until `retryBudgetMs` runs out (what a well-behaved client does). Runs until
 * `signal` aborts. Nodes are base URLs, read on every attempt so a test can change the set.
 */
export async function runSendLoad(options: {
  nodes: () => string[];
  conversations: LoadConversation[];
  workers: number;
  signal: AbortSignal;
  retryBudgetMs?: number;
  /** Prefix of the idempotency keys (unique per load run). */
  keyPrefix?: string;
  onAck?: (ack: AckedSend & { atMs: number; startedAtMs: number }) => void;
}): Promise<LoadResult> {
  const result: LoadResult = { acked: [], failed: [], retries: 0, latenciesMs: [] };
  const clients = new Map<string, ApiClients>();
  const client = (url: string, token: string) => {
    const k = `${url}|${token}`;
    if (!clients.has(k)) clients.set(k, apiClients(url, token));
    return clients.get(k)!;
  };
  const pick = <T>(list: T[]) => list[Math.floor(Math.random() * list.length)]!;
  const worker = async (w: number) => {
    for (let n = 0; !options.signal.aborted; n++) {
      const conversation = pick(options.conversations);
      const sender = pick(conversation.members);
      const key = `${options.keyPrefix ?? "w"}${w}-${n}`;
      const startedAtMs = Date.now();
      const budgetEnd = startedAtMs + (options.retryBudgetMs ?? 20_000);
      for (;;) {
        try {
          const res = await client(pick(options.nodes()), sender.token).messages.sendMessage(
            { conversationId: conversation.id, body: `load ${key}`, idempotencyKey: key },
            { timeoutMs: 12_000 },
          );
          const ack = { conversationId: conversation.id, senderId: sender.id, idempotencyKey: key, messageId: res.message!.id, seq: res.message!.seq };
          result.acked.push(ack);
          result.latenciesMs.push(Date.now() - startedAtMs);
          options.onAck?.({ ...ack, atMs: Date.now(), startedAtMs });
          break;
        } catch (error) {
          if (Date.now() > budgetEnd) {
            result.failed.push({ key, error: ConnectError.from(error).message });
            break;
          }
          result.retries++;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: options.workers }, (_, w) => worker(w)));
  return result;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
