/**
 * GCRA (generic cell rate algorithm, the "virtual scheduling" form): a budget of `burst` requests
 * that refills at `perSecond`. State per subject is one number, the theoretical arrival time (TAT):
 * when the bucket would be full again. A request of cost c is allowed iff
 * `max(TAT, now) + c*T - burst*T <= now` (T = 1000/perSecond ms); then TAT moves by c*T.
 * Over any interval of length t at most `burst + perSecond * t` requests are allowed.
 */
export type Budget = {
  /** Stable name used in keys and headers ("send", "auth", ...). */
  name: string;
  perSecond: number;
  burst: number;
};

export type Decision = {
  allowed: boolean;
  /** Requests still allowed right now after this one. */
  remaining: number;
  /** When refused: wait this long before the same request would pass. 0 when allowed. */
  retryAfterMs: number;
  /** Until the budget is full again. */
  resetAfterMs: number;
  /** Who decided: the shared Redis budget, the in-process fallback, or the fail-closed policy. */
  source: "redis" | "local" | "closed";
};

export const intervalMs = (b: Budget): number => 1000 / b.perSecond;

/** One GCRA step on a TAT held in memory; returns the decision and the new TAT (unchanged when refused). */
export function gcraStep(tat: number | undefined, nowMs: number, b: Budget, cost = 1): { decision: Omit<Decision, "source">; tat: number | undefined } {
  const t = intervalMs(b);
  const from = Math.max(tat ?? nowMs, nowMs);
  const newTat = from + cost * t;
  const diff = nowMs - (newTat - b.burst * t);
  if (diff < 0) return { decision: { allowed: false, remaining: 0, retryAfterMs: Math.ceil(-diff), resetAfterMs: Math.ceil(from - nowMs) }, tat };
  return { decision: { allowed: true, remaining: Math.floor(diff / t), retryAfterMs: 0, resetAfterMs: Math.ceil(newTat - nowMs) }, tat: cost > 0 ? newTat : tat };
}

/**
 * The same step in Redis, atomic per key, on Redis server time (one clock for every process).
 *
 * KEYS[1]  the budget key of one subject (a string holding the TAT in epoch ms; PX-expires when full)
 * ARGV[1]  T, the emission interval in ms (1000 / perSecond), may be fractional
 * ARGV[2]  burst, requests allowed at once
 * ARGV[3]  cost, requests this call takes (0 only reads)
 * Returns  {allowed 0|1, remaining, retryAfterMs, resetAfterMs}, integers (ms rounded up)
 */
export const GCRA_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local newTat = tat + cost * interval
local diff = now - (newTat - burst * interval)
if diff < 0 then
  return {0, 0, math.ceil(-diff), math.ceil(tat - now)}
end
if cost > 0 then
  redis.call('SET', KEYS[1], string.format('%.3f', newTat), 'PX', math.max(1, math.ceil(newTat - now)))
end
return {1, math.floor(diff / interval), 0, math.ceil(newTat - now)}
`;
