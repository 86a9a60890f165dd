import { randomUUID } from "node:crypto";
import * as http from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import type { Principal, TokenService } from "../auth/index.js";
import type { DeliveryHub, HubEvent } from "../delivery/index.js";
import { AppError } from "../errors/index.js";
import type { Logger } from "../telemetry/index.js";
import type { ChatApiClient } from "./chat-api-client.js";
import { CloseCode, Connection, type ConnectionLimits } from "./connection.js";
import type { GatewayMetrics } from "./gateway-metrics.js";
import { createTypingThrottle } from "./typing-throttle.js";

export const PROTO_SUBPROTOCOL = "chat.v1.proto";
export const JSON_SUBPROTOCOL = "chat.v1.json";
const BEARER_SUBPROTOCOL = /^bearer\.([A-Za-z0-9_\-.]{1,4096})$/;

export type GatewayServerOptions = {
  hub: DeliveryHub;
  tokens: TokenService;
  api: ChatApiClient;
  metrics: GatewayMetrics;
  logger: Logger;
  host: string;
  port: number;
  /** Browser origins allowed to connect; a request without Origin (not a browser) is allowed. */
  corsOrigins: readonly string[];
  /** Largest client frame; larger ones close the socket with 1009. Default 64 KiB. */
  maxPayloadBytes?: number;
  /** Liveness: ping every this often; no pong by the next ping terminates. Default 30 s. */
  pingIntervalMs?: number;
  /** Drain: sockets are closed (4100) in this many jittered batches. Default 10. */
  drainBatches?: number;
  /** Drain: pause between batches, jittered ±50 %. Default 200 ms. */
  drainBatchIntervalMs?: number;
  limits?: Partial<ConnectionLimits>;
  /**
   * Presence reporting: each socket counts as a device of its user while open (reported on open,
   * every `refreshMs`, and on close). Failures are logged; presence is best effort.
   */
  presence?: { report(userId: string, connectionId: string, alive: boolean): Promise<void>; refreshMs: number };
  /** /ready answers 200 only when this resolves true (and the server is not draining). */
  ready: () => Promise<boolean>;
};

export type GatewayServer = {
  port: number;
  readonly connectionCount: number;
  /** Sends an ephemeral event (presence) to every socket of these users on this gateway. */
  notifyUsers(userIds: Iterable<string>, event: HubEvent): void;
  /** Stops accepting, closes every socket with 4100 in jittered batches, then stops listening. */
  drain(): Promise<void>;
};

const defaults: ConnectionLimits = {
  maxBufferedBytes: 1 << 20,
  framesPerSecond: 20,
  frameBurst: 60,
  maxRefusedFrames: 200,
  maxJoined: 1000,
  maxInFlight: 64,
  closeTimeoutMs: 10_000,
};

/** The token of an upgrade request: Authorization header, `bearer.<jwt>` subprotocol, or ?token=. */
function upgradeToken(req: http.IncomingMessage, url: URL): string | null {
  const header = /^Bearer ([A-Za-z0-9_\-.]{1,4096})$/.exec(req.headers.authorization ?? "");
  if (header) return header[1]!;
  for (const p of (req.headers["sec-websocket-protocol"] ?? "").split(",")) {
    const m = BEARER_SUBPROTOCOL.exec(p.trim());
    if (m) return m[1]!;
  }
  return url.searchParams.get("token");
}

function refuse(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nconnection: close\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  setTimeout(() => socket.destroy(), 1000).unref();
}

/**
 * The WebSocket gateway's HTTP server: `/ws` (and `/`) upgrades, authenticated and origin-checked
 * before the handshake (HTTP 401/403, never a frame); `/health`, `/ready`, `/metrics`.
 */
export async function startGatewayServer(options: GatewayServerOptions): Promise<GatewayServer> {
  const { hub, tokens, metrics, logger } = options;
  const limits: ConnectionLimits = { ...defaults, ...options.limits };
  const connections = new Map<WebSocket, Connection>();
  const byUser = new Map<string, Map<Connection, string>>();
  const report = (userId: string, connectionId: string, alive: boolean) =>
    options.presence?.report(userId, connectionId, alive).catch((err: unknown) => logger.warn({ err }, "presence report failed"));
  let draining = false;
  const typing = createTypingThrottle({ forward: Connection.typingPublisher(hub, logger) });
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxPayloadBytes ?? 64 * 1024,
    perMessageDeflate: false,
    clientTracking: false,
    // Never echo the bearer subprotocol (it carries the token); pick the format.
    handleProtocols: (protocols) => (protocols.has(PROTO_SUBPROTOCOL) ? PROTO_SUBPROTOCOL : protocols.has(JSON_SUBPROTOCOL) ? JSON_SUBPROTOCOL : false),
  });

  const server = http.createServer({ headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 5_000, connectionsCheckingInterval: 1_000 }, (req, res) => {
    void (async () => {
      const path = (req.url ?? "/").split("?")[0];
      const json = (status: number, body: unknown) => {
        res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
        res.end(JSON.stringify(body));
      };
      if (path === "/health") return json(200, { status: "ok", hubId: hub.hubId });
      if (path === "/ready") {
        const ok = !draining && (await options.ready().catch(() => false));
        return json(ok ? 200 : 503, { status: ok ? "ready" : "not ready" });
      }
      if (path === "/metrics") {
        metrics.connections.set(connections.size);
        res.writeHead(200, { "content-type": metrics.registry.contentType });
        return res.end(await metrics.registry.metrics());
      }
      json(path === "/ws" || path === "/" ? 426 : 404, { error: { code: "not_found", message: "WebSocket upgrade required at /ws" } });
    })().catch((err: unknown) => {
      logger.error({ err }, "http request failed");
      res.destroy();
    });
  });

  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => socket.destroy());
    void (async () => {
      const url = new URL(req.url ?? "/", "http://gateway");
      const reject = (status: number, code: string, message: string) => {
        metrics.upgradesRefused.inc({ status: String(status) });
        refuse(socket, status, code, message);
      };
      if (url.pathname !== "/ws" && url.pathname !== "/") return reject(404, "not_found", "no such path");
      if (draining) return reject(503, "unavailable", "gateway is draining; connect to another");
      const origin = req.headers.origin;
      if (origin !== undefined && !options.corsOrigins.includes(origin)) return reject(403, "permission_denied", "origin not allowed");
      const token = upgradeToken(req, url);
      if (token === null) return reject(401, "unauthenticated", "missing token");
      let principal: Principal;
      try {
        principal = await tokens.verify(token);
      } catch (error) {
        return reject(401, "unauthenticated", AppError.from(error).code === "unauthenticated" ? AppError.from(error).message : "invalid token");
      }
      if (draining) return reject(503, "unavailable", "gateway is draining; connect to another");
      wss.handleUpgrade(req, socket, head, (ws) => {
        const connection = new Connection(ws, principal, token, ws.protocol === PROTO_SUBPROTOCOL, { hub, api: options.api, typing, metrics, logger, limits });
        connections.set(ws, connection);
        metrics.connections.set(connections.size);
        const connectionId = randomUUID();
        const mine = byUser.get(principal.userId) ?? new Map<Connection, string>();
        mine.set(connection, connectionId);
        byUser.set(principal.userId, mine);
        void report(principal.userId, connectionId, true);
        ws.once("close", () => {
          connections.delete(ws);
          metrics.connections.set(connections.size);
          mine.delete(connection);
          if (mine.size === 0) byUser.delete(principal.userId);
          void report(principal.userId, connectionId, false);
        });
      });
    })().catch((err: unknown) => {
      logger.error({ err }, "upgrade failed");
      socket.destroy();
    });
  });

  const pinger = setInterval(() => {
    for (const [ws, connection] of connections) {
      if (!connection.alive) {
        metrics.closes.inc({ code: "ping_timeout" });
        ws.terminate();
        continue;
      }
      connection.alive = false;
      ws.ping();
    }
  }, options.pingIntervalMs ?? 30_000);
  pinger.unref();
  const presenceRefresher = options.presence
    ? setInterval(() => {
        for (const [userId, mine] of byUser) for (const id of mine.values()) void report(userId, id, true);
      }, options.presence.refreshMs)
    : undefined;
  presenceRefresher?.unref();

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.address() as { port: number }).port;

  let drained: Promise<void> | undefined;
  return {
    port,
    get connectionCount() {
      return connections.size;
    },
    notifyUsers(userIds, event) {
      for (const userId of userIds) for (const connection of byUser.get(userId)?.keys() ?? []) connection.sendEphemeral(event);
    },
    drain() {
      drained ??= (async () => {
        draining = true;
        clearInterval(pinger);
        clearInterval(presenceRefresher);
        const all = [...connections.values()];
        const batches = Math.max(1, options.drainBatches ?? 10);
        const size = Math.ceil(all.length / batches);
        const interval = options.drainBatchIntervalMs ?? 200;
        logger.info({ connections: all.length, batches }, "draining gateway");
        for (let i = 0; i < all.length; i += size) {
          for (const c of all.slice(i, i + size)) c.close(CloseCode.draining, "server draining; resume elsewhere");
          if (i + size < all.length) await new Promise((r) => setTimeout(r, interval * (0.5 + Math.random())));
        }
        // Give peers a moment to complete the close handshake, then cut whatever is left.
        const deadline = Date.now() + 2_000;
        while (connections.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        for (const ws of connections.keys()) ws.terminate();
        typing.close();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
      })();
      return drained;
    },
  };
}
