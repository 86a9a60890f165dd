import { isIP } from "node:net";
import { createContextKey } from "@connectrpc/connect";
import type { Config } from "../config/index.js";
import { AppError } from "../errors/index.js";
import type { RedisKeys } from "../redis/index.js";
import type { Logger } from "../telemetry/index.js";
import type { Budget, Decision } from "./gcra.js";
import { createRedisRateLimiter, type RateLimiter } from "./rate-limiter.js";

/** CHAT_RATELIMIT_* settings, as parsed by internal/config. */
export type RateLimitSettings = Config["rateLimit"];

/** Sets one response header (Connect: ctx.responseHeader.set; REST: res.setHeader). */
export type SetHeader = (name: string, value: string) => void;

/**
 * The budgets every process enforces, in one place:
 * - send(userId): messages per user, all nodes and transports together (checked before the actor
 *   queue); Redis down: per-process fallback limiter.
 * - auth(ip) and login(username): login/register per client IP, login per username; Redis down:
 *   refused with UNAVAILABLE unless CHAT_RATELIMIT_AUTH_FAIL_CLOSED=false.
 * - heartbeat(userId): presence heartbeats per user; Redis down: per-process fallback.
   (WebSocket frames per connection use the same GCRA inside the gateway connection: gcraStep.)
 * send/auth/login/heartbeat throw AppError("resource_exhausted", details.retryAfterMs) when over
 * budget (AppError("unavailable") for fail-closed), after setting `RateLimit-Policy` and
 * `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers) through `setHeader` when given.
 */
export type RateLimits = {
  send(userId: string, setHeader?: SetHeader): Promise<void>;
  auth(ip: string, setHeader?: SetHeader): Promise<void>;
  login(username: string, setHeader?: SetHeader): Promise<void>;
  heartbeat(userId: string, setHeader?: SetHeader): Promise<void>;
  close(): Promise<void>;
};

export const budgetsFrom = (s: RateLimitSettings) => ({
  send: { name: "send", ...s.send },
  auth: { name: "auth", ...s.auth },
  login: { name: "login", ...s.login },
  heartbeat: { name: "heartbeat", ...s.heartbeats },
}) satisfies Record<string, Budget>;

/** `RateLimit-Policy` and `RateLimit` header values for a decision (window = time to refill the burst). */
export function rateLimitHeaders(budget: Budget, d: Decision): { policy: string; limit: string } {
  const windowS = Math.max(1, Math.ceil(budget.burst / budget.perSecond));
  const resetS = Math.ceil((d.allowed ? d.resetAfterMs : d.retryAfterMs) / 1000);
  return { policy: `"${budget.name}";q=${budget.burst};w=${windowS}`, limit: `"${budget.name}";r=${d.remaining};t=${resetS}` };
}

export function createRateLimits(options: { settings: RateLimitSettings; redisUrl: string; keys: RedisKeys; logger: Logger; limiter?: RateLimiter }): RateLimits {
  const s = options.settings;
  const budgets = budgetsFrom(s);
  const limiter = options.limiter ?? createRedisRateLimiter({
    redisUrl: options.redisUrl, keys: options.keys, timeoutMs: s.redisTimeoutMs, logger: options.logger,
    redisDown: s.authFailClosed ? { auth: "closed", login: "closed" } : {},
  });

  const enforce = async (budget: Budget, subject: string, setHeader?: SetHeader) => {
    if (!s.enabled) return;
    const d = await limiter.check(budget, subject);
    if (setHeader && d.source !== "closed") {
      const h = rateLimitHeaders(budget, d);
      setHeader("ratelimit-policy", h.policy);
      setHeader("ratelimit", h.limit);
    }
    if (d.allowed) return;
    if (d.source === "closed") {
      throw new AppError("unavailable", "temporarily unavailable, try again shortly", { details: { retryAfterMs: d.retryAfterMs } });
    }
    throw new AppError("resource_exhausted", `rate limit exceeded (${budget.name}), retry later`, { details: { retryAfterMs: d.retryAfterMs } });
  };

  return {
    send: (userId, setHeader) => enforce(budgets.send, userId, setHeader),
    auth: (ip, setHeader) => enforce(budgets.auth, ip, setHeader),
    login: (username, setHeader) => enforce(budgets.login, username.trim().toLowerCase(), setHeader),
    heartbeat: (userId, setHeader) => enforce(budgets.heartbeat, userId, setHeader),
    async close() {
      await limiter.close();
    },
  };
}

/** Connect context value: the client's IP, set by the chat-node's adapter (see clientAddress). */
export const clientAddressKey = createContextKey<string>("unknown", { description: "client IP address" });

/**
 * The client IP of a request: the socket's peer, or, when the peer is a trusted proxy
 * (CHAT_TRUSTED_PROXIES), the right-most X-Forwarded-For entry that is not itself a trusted proxy.
 * Entries that are not IP addresses stop the walk (a client can write anything to the left).
 */
export function clientAddress(
  req: { socket?: { remoteAddress?: string } | null; headers: Record<string, string | string[] | undefined> },
  trustedProxies: readonly string[],
): string {
  let address = req.socket?.remoteAddress ?? "unknown";
  if (!trustedProxies.includes(address)) return address;
  const header = req.headers["x-forwarded-for"];
  const hops = (Array.isArray(header) ? header.join(",") : header ?? "").split(",").map((h) => h.trim()).filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!;
    if (isIP(hop) === 0) break;
    address = hop;
    if (!trustedProxies.includes(hop)) break;
  }
  return address;
}
