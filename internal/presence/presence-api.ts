import { create } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { bearerToken, type Principal, type TokenService } from "../auth/index.js";
import { AppError, invalidArgument } from "../errors/index.js";
import { PresenceStatus as PresenceStatusProto } from "../gen/chat/v1/events_pb.js";
import {
  BatchGetStatusResponseSchema,
  GetStatusResponseSchema,
  HeartbeatResponseSchema,
  PresenceService,
  UserPresenceSchema,
  type UserPresence as UserPresenceProto,
} from "../gen/chat/v1/presence_pb.js";
import { readJson, sendJson, type Request, type Response } from "../http/index.js";
import type { PresenceTracker, UserPresence } from "./presence-tracker.js";

/** Most user ids one batch call may ask for. */
export const MAX_BATCH_USERS = 500;
const USER_ID = /^[0-9a-zA-Z-]{1,64}$/;
const DEVICE_ID = /^[\x21-\x7e]{1,128}$/;

function checkUserId(id: unknown, field = "userId"): string {
  if (typeof id !== "string" || !USER_ID.test(id)) throw invalidArgument(field, `${field} must be a user id`);
  return id;
}

function checkDeviceId(id: unknown): string {
  if (id === undefined || id === null || id === "") return "default";
  if (typeof id !== "string" || !DEVICE_ID.test(id)) throw invalidArgument("deviceId", "deviceId must be 1-128 printable ASCII characters");
  return id;
}

function checkUserIds(ids: unknown): string[] {
  if (!Array.isArray(ids)) throw invalidArgument("userIds", "userIds must be an array");
  if (ids.length > MAX_BATCH_USERS) throw invalidArgument("userIds", `at most ${MAX_BATCH_USERS} userIds`);
  return ids.map((id) => checkUserId(id, "userIds"));
}

const toProto = (p: UserPresence): UserPresenceProto =>
  create(UserPresenceSchema, {
    userId: p.userId,
    status: p.status === "online" ? PresenceStatusProto.ONLINE : PresenceStatusProto.OFFLINE,
    lastSeenMs: BigInt(p.lastSeenMs),
  });

/** The seed's JSON shape: `{ userId, status: "online"|"offline", online, lastSeen (ISO, null when never), lastSeenMs }`. */
const toJson = (p: UserPresence) => ({
  userId: p.userId,
  status: p.status,
  online: p.status === "online",
  lastSeen: p.lastSeenMs > 0 ? new Date(p.lastSeenMs).toISOString() : null,
  lastSeenMs: p.lastSeenMs,
});

/**
 * The presence surface: PresenceService RPCs and the seed's REST paths (`POST /heartbeat`,
 * `GET /status/:userId`, `POST /status/batch`). Every call needs a bearer token.
 */
export function createPresenceApi(
  tracker: PresenceTracker,
  tokens: TokenService,
  maxRequestBytes: number,
  /** The shared per-user heartbeat budget (internal/ratelimit RateLimits.heartbeat). */
  limitHeartbeat: (userId: string, setHeader?: (name: string, value: string) => void) => Promise<void>,
) {
  const who = (header: string | null | undefined): Promise<Principal> => tokens.verify(bearerToken(header));
  const fromCtx = (ctx: HandlerContext) => who(ctx.requestHeader.get("authorization"));

  return {
    connectRoutes(router: ConnectRouter): void {
      router.service(PresenceService, {
        async heartbeat(req, ctx) {
          const me = await fromCtx(ctx);
          await limitHeartbeat(me.userId, (name, value) => ctx.responseHeader.set(name, value));
          const p = await tracker.heartbeat(me.userId, checkDeviceId(req.deviceId));
          return create(HeartbeatResponseSchema, { presence: toProto(p), ttlMs: BigInt(tracker.ttlMs) });
        },
        async getStatus(req, ctx) {
          await fromCtx(ctx);
          return create(GetStatusResponseSchema, { presence: toProto(await tracker.getStatus(checkUserId(req.userId))) });
        },
        async batchGetStatus(req, ctx) {
          await fromCtx(ctx);
          const list = await tracker.batchGetStatus(checkUserIds(req.userIds));
          return create(BatchGetStatusResponseSchema, { presences: list.map(toProto) });
        },
      });
    },

    /** Answers a seed REST path and returns true, or returns false for any other path. */
    async handleRest(req: Request, res: Response): Promise<boolean> {
      const path = new URL(req.url ?? "/", "http://localhost").pathname;
      const auth = typeof req.headers.authorization === "string" ? req.headers.authorization : undefined;
      const statusMatch = /^\/status\/([^/]+)$/.exec(path);
      if (path === "/heartbeat") {
        if (req.method !== "POST") throw new AppError("invalid_argument", "use POST");
        const me = await who(auth);
        await limitHeartbeat(me.userId, (name, value) => res.setHeader(name, value));
        const body = (await readJson(req, maxRequestBytes)) as { deviceId?: unknown };
        const p = await tracker.heartbeat(me.userId, checkDeviceId(body?.deviceId));
        sendJson(res, 200, { ...toJson(p), ttlMs: tracker.ttlMs });
        return true;
      }
      if (path === "/status/batch") {
        if (req.method !== "POST") throw new AppError("invalid_argument", "use POST");
        await who(auth);
        const body = (await readJson(req, maxRequestBytes)) as { userIds?: unknown };
        const list = await tracker.batchGetStatus(checkUserIds(body?.userIds));
        sendJson(res, 200, { statuses: list.map(toJson) });
        return true;
      }
      if (statusMatch) {
        if (req.method !== "GET") throw new AppError("invalid_argument", "use GET");
        await who(auth);
        sendJson(res, 200, toJson(await tracker.getStatus(checkUserId(decodeURIComponent(statusMatch[1]!)))));
        return true;
      }
      return false;
    },
  };
}
