import { gcraStep, type Budget } from "../ratelimit/index.js";

/**
 * One connection's incoming-frame budget (CHAT_RATELIMIT_FRAMES_*): the same GCRA as every other
 * limit, kept in the connection itself because a connection lives in one process (no Redis round
 * trip per frame). `take()` is false when the frame must be refused.
 */
export function createFrameLimiter(perSecond: number, burst: number, now: () => number = Date.now) {
  const budget: Budget = { name: "frame", perSecond, burst };
  let tat: number | undefined;
  return {
    take(): boolean {
      const step = gcraStep(tat, now(), budget);
      tat = step.tat;
      return step.decision.allowed;
    },
  };
}
