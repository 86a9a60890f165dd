import { readdirSync, readFileSync, statSync } from "node:fs";
import * as http from "node:http";
import type * as net from "node:net";
import { extname, join, relative, sep } from "node:path";
import { gzipSync } from "node:zlib";
import type { Config } from "../config/index.js";
import { createMetrics, type Logger } from "../telemetry/index.js";
import { closeAll } from "./run-process.js";

export type WebServer = { port: number; close(): Promise<void> };

export type WebServerOptions = {
  /** The output of `vite build web`; read into memory once at start. */
  distDir: string;
};

/** Vite puts content-hashed files here; they never change, so browsers may keep them for a year. */
const HASHED_PREFIX = "/assets/";
const IMMUTABLE = "public, max-age=31536000, immutable";
const REVALIDATE = "no-cache";

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".webmanifest": "application/manifest+json",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
};

/** Same-origin only: the app talks to its own origin (RPC, /ws, /presence), never elsewhere. */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "style-src 'self'",
  "script-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'self'",
  "form-action 'self'",
].join("; ");

const SECURITY_HEADERS: Record<string, string> = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
};

/** Hop-by-hop headers are per connection and must not be forwarded (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
]);

type StaticFile = { body: Buffer; gzip: Buffer | null; contentType: string; cacheControl: string; etag: string };

function loadDist(distDir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) {
        walk(path);
        continue;
      }
      const urlPath = `/${relative(distDir, path).split(sep).join("/")}`;
      const body = readFileSync(path);
      const contentType = CONTENT_TYPES[extname(path)] ?? "application/octet-stream";
      const compressible = /^(text\/|application\/(json|manifest)|image\/svg)/.test(contentType) && body.length > 512;
      const etag = `"${body.length.toString(16)}-${hashOf(body)}"`;
      files.set(urlPath, {
        body,
        gzip: compressible ? gzipSync(body, { level: 9 }) : null,
        contentType,
        cacheControl: urlPath.startsWith(HASHED_PREFIX) ? IMMUTABLE : REVALIDATE,
        etag,
      });
    }
  };
  walk(distDir);
  return files;
}

function hashOf(body: Buffer): string {
  let h = 0x811c9dc5;
  for (const byte of body) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h.toString(16);
}

function forwardedHeaders(req: http.IncomingMessage, target: URL): http.OutgoingHttpHeaders {
  const headers: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (!HOP_BY_HOP.has(name) && value !== undefined) headers[name] = value;
  }
  const remote = req.socket.remoteAddress ?? "";
  const prior = req.headers["x-forwarded-for"];
  headers["x-forwarded-for"] = prior ? `${prior}, ${remote}` : remote;
  headers["x-forwarded-host"] = req.headers.host ?? "";
  headers["x-forwarded-proto"] = "http";
  headers.host = target.host;
  return headers;
}

/**
 * The web app's production server: serves `web/dist` (hashed assets cached for a year, index.html
 * revalidated every time, unknown paths fall back to index.html so client routes like
 * `/c/<id>` load the app) and reverse-proxies the backends so the browser sees one origin:
 * `/chat.v1.*` and `/api/*` to the chat-node, `/ws` upgrades to the gateway, `/presence/*` to the
 * presence service (with `/presence` stripped). A backend that is down answers 502. The `Origin`
 * header is forwarded untouched: backends still check it against CHAT_CORS_ORIGINS.
 */
export async function startWebServer(config: Config, logger: Logger, options: WebServerOptions): Promise<WebServer> {
  const files = loadDist(options.distDir);
  const index = files.get("/index.html");
  if (!index) throw new Error(`no index.html in ${options.distDir}: run \`vite build web\` first`);
  const api = new URL(config.webApiUrl);
  const gateway = new URL(config.webGatewayUrl);
  const presence = new URL(config.webPresenceUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const sockets = new Set<net.Socket>();

  const proxy = (req: http.IncomingMessage, res: http.ServerResponse, target: URL, path: string) => {
    const upstream = http.request(
      { protocol: target.protocol, hostname: target.hostname, port: target.port, method: req.method, path, headers: forwardedHeaders(req, target), agent },
      (upstreamRes) => {
        const headers: http.OutgoingHttpHeaders = {};
        for (const [name, value] of Object.entries(upstreamRes.headers)) {
          if (!HOP_BY_HOP.has(name) && value !== undefined) headers[name] = value;
        }
        res.writeHead(upstreamRes.statusCode ?? 502, headers);
        upstreamRes.pipe(res);
      },
    );
    upstream.on("error", (err) => {
      logger.warn({ err, target: target.host, path }, "proxy request failed");
      if (!res.headersSent) {
        res.writeHead(502, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { code: "unavailable", message: "upstream unavailable" } }));
      } else {
        res.destroy();
      }
    });
    res.on("close", () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  };

  const serveStatic = (req: http.IncomingMessage, res: http.ServerResponse, path: string) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" });
      res.end();
      return;
    }
    let file = files.get(path);
    if (!file && !path.startsWith(HASHED_PREFIX) && !extname(path)) file = index; // client-side route
    if (!file) {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8", "cache-control": REVALIDATE });
      res.end("not found");
      return;
    }
    const headers: http.OutgoingHttpHeaders = {
      "content-type": file.contentType,
      "cache-control": file.cacheControl,
      etag: file.etag,
      vary: "Accept-Encoding",
    };
    if (file.contentType.startsWith("text/html")) headers["content-security-policy"] = CONTENT_SECURITY_POLICY;
    if (req.headers["if-none-match"] === file.etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    const gzip = file.gzip !== null && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
    const body = gzip ? file.gzip! : file.body;
    if (gzip) headers["content-encoding"] = "gzip";
    headers["content-length"] = body.length;
    res.writeHead(200, headers);
    res.end(req.method === "HEAD" ? undefined : body);
  };

  const metrics = createMetrics();
  const server = http.createServer({ headersTimeout: 10_000, keepAliveTimeout: 5_000 }, (req, res) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    const url = req.url ?? "/";
    const path = url.split("?")[0]!;
    if (path.startsWith("/chat.v1.") || path === "/api" || path.startsWith("/api/")) return proxy(req, res, api, url);
    if (path === "/presence" || path.startsWith("/presence/")) return proxy(req, res, presence, url.slice("/presence".length) || "/");
    if (path === "/health" || path === "/ready") {
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
      res.end('{"status":"ok"}');
      return;
    }
    if (path === "/metrics") {
      void metrics.registry.metrics().then((text) => {
        res.writeHead(200, { "content-type": metrics.registry.contentType });
        res.end(text);
      });
      return;
    }
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      decoded = path;
    }
    serveStatic(req, res, decoded);
  });

  server.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });

  server.on("upgrade", (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    const path = (req.url ?? "/").split("?")[0]!;
    if (path !== "/ws" && !path.startsWith("/ws/")) {
      socket.end("HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
      return;
    }
    const headers = forwardedHeaders(req, gateway);
    headers.connection = "Upgrade";
    headers.upgrade = req.headers.upgrade ?? "websocket";
    const upstream = http.request({
      protocol: gateway.protocol, hostname: gateway.hostname, port: gateway.port, method: req.method, path: req.url, headers,
    });
    socket.on("error", () => upstream.destroy());
    upstream.on("upgrade", (upstreamRes, upstreamSocket, upstreamHead) => {
      sockets.add(upstreamSocket);
      upstreamSocket.once("close", () => sockets.delete(upstreamSocket));
      const lines = [`HTTP/1.1 ${upstreamRes.statusCode} ${upstreamRes.statusMessage}`];
      for (let i = 0; i < upstreamRes.rawHeaders.length; i += 2) lines.push(`${upstreamRes.rawHeaders[i]}: ${upstreamRes.rawHeaders[i + 1]}`);
      socket.write(`${lines.join("\r\n")}\r\n\r\n`);
      if (upstreamHead.length > 0) socket.write(upstreamHead);
      if (head.length > 0) upstreamSocket.write(head);
      upstreamSocket.on("error", () => socket.destroy());
      socket.on("error", () => upstreamSocket.destroy());
      upstreamSocket.on("close", () => socket.destroy());
      socket.on("close", () => upstreamSocket.destroy());
      upstreamSocket.pipe(socket);
      socket.pipe(upstreamSocket);
    });
    // The gateway refused the upgrade (401 bad token, 403 foreign origin, ...): pass its answer on.
    upstream.on("response", (upstreamRes) => {
      const lines = [`HTTP/1.1 ${upstreamRes.statusCode} ${upstreamRes.statusMessage}`];
      for (let i = 0; i < upstreamRes.rawHeaders.length; i += 2) {
        if (!HOP_BY_HOP.has(upstreamRes.rawHeaders[i]!.toLowerCase())) lines.push(`${upstreamRes.rawHeaders[i]}: ${upstreamRes.rawHeaders[i + 1]}`);
      }
      lines.push("connection: close");
      socket.write(`${lines.join("\r\n")}\r\n\r\n`);
      upstreamRes.pipe(socket);
    });
    upstream.on("error", (err) => {
      logger.warn({ err, target: gateway.host }, "websocket proxy failed");
      socket.end("HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    });
    upstream.end();
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.webPort, config.bindHost, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  logger.info({ port, files: files.size, api: api.origin, gateway: gateway.origin, presence: presence.origin }, "web listening");

  let closing: Promise<void> | undefined;
  return {
    port,
    close() {
      closing ??= closeAll([
        () => new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const socket of sockets) socket.destroy();
        }),
        () => agent.destroy(),
      ]);
      return closing;
    },
  };
}
