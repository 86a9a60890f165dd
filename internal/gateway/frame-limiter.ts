/**
 * Token bucket for one connection's incoming frames: `burst` frames at once, refilled at
 * `perSecond`. `take()` is false when the frame must be refused.
 */
export function createFrameLimiter(perSecond: number, burst: number, now: () => number = Date.now) {
  let tokens = burst;
  let last = now();
  return {
    take(): boolean {
      const t = now();
      tokens = Math.min(burst, tokens + ((t - last) / 1000) * perSecond);
      last = t;
      if (tokens < 1) return false;
      tokens -= 1;
      return true;
    },
  };
}
