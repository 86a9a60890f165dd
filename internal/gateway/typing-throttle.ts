/**
 * Server-side typing throttle per (user, conversation): forwards a state change at once, repeats of
 * `typing: true` at most once per `intervalMs`, and emits `typing: false` by itself when no renewal
 * arrives within `ttlMs`. Entries live only while someone is typing (bounded by active typists).
 */
export function createTypingThrottle(options: {
  intervalMs?: number;
  ttlMs?: number;
  /** Publishes a forwarded state; failures are the callee's to handle. */
  forward: (conversationId: string, userId: string, typing: boolean) => void;
  now?: () => number;
}) {
  const intervalMs = options.intervalMs ?? 2_000;
  const ttlMs = options.ttlMs ?? 5_000;
  const now = options.now ?? Date.now;
  const entries = new Map<string, { lastForwardMs: number; expiry: NodeJS.Timeout }>();
  return {
    /** Returns whether the event was forwarded. */
    offer(conversationId: string, userId: string, typing: boolean): boolean {
      const key = `${userId}\u0000${conversationId}`;
      const entry = entries.get(key);
      if (!typing) {
        if (!entry) return false;
        clearTimeout(entry.expiry);
        entries.delete(key);
        options.forward(conversationId, userId, false);
        return true;
      }
      const expire = () => {
        entries.delete(key);
        options.forward(conversationId, userId, false);
      };
      if (entry) {
        clearTimeout(entry.expiry);
        entry.expiry = setTimeout(expire, ttlMs);
        if (now() - entry.lastForwardMs < intervalMs) return false;
        entry.lastForwardMs = now();
      } else {
        entries.set(key, { lastForwardMs: now(), expiry: setTimeout(expire, ttlMs) });
      }
      options.forward(conversationId, userId, true);
      return true;
    },
    get size(): number {
      return entries.size;
    },
    close(): void {
      for (const e of entries.values()) clearTimeout(e.expiry);
      entries.clear();
    },
  };
}

export type TypingThrottle = ReturnType<typeof createTypingThrottle>;
