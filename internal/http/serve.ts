import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type { Request, Response } from "./http-basics.js";

const PREFACE = "PRI * HTTP/2.0";

export type Listening = {
  port: number;
  /** Stops accepting, lets requests in flight finish for up to graceMs, then destroys the sockets. */
  close(graceMs?: number): Promise<void>;
};

/**
 * One port for HTTP/2 cleartext (gRPC, Connect over h2) and HTTP/1.1 (browsers, REST, Connect,
 * gRPC-Web): the first bytes tell which server gets the socket. Header and idle timeouts are set on
 * both. close() stops listening and destroys open sockets.
 */
export async function serveHttp(
  handler: (req: Request, res: Response) => void,
  options: { host: string; port: number; headersTimeoutMs?: number },
): Promise<Listening> {
  const headersTimeoutMs = options.headersTimeoutMs ?? 10_000;
  let inFlight = 0;
  let draining = false;
  const counted = (req: Request, res: Response) => {
    inFlight++;
    res.once("close", () => inFlight--);
    if (draining) res.setHeader("connection", "close");
    handler(req, res);
  };
  const h1 = http.createServer({
    headersTimeout: headersTimeoutMs,
    requestTimeout: Math.max(60_000, headersTimeoutMs),
    keepAliveTimeout: 5_000,
    // How often node checks those timeouts (default 30 s, which would let a slow-header client stay far longer).
    connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(headersTimeoutMs / 2))),
  }, counted);
  // h1 never listens itself (sockets are handed to it); node starts the timer that enforces
  // headersTimeout/requestTimeout on "listening", so announce it (the timer is unref'd).
  h1.emit("listening");
  const h2 = http2.createServer({ maxSessionMemory: 32 }, counted);
  const sessions = new Set<http2.Http2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  h2.setTimeout(120_000);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.setTimeout(headersTimeoutMs, () => socket.destroy());
    socket.once("readable", () => {
      socket.setTimeout(0);
      const head: Buffer | null = socket.read(PREFACE.length) ?? socket.read();
      if (head === null) {
        socket.destroy();
        return;
      }
      socket.unshift(head);
      (head.toString("latin1").startsWith(PREFACE) ? h2 : h1).emit("connection", socket);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as net.AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    port: address.port,
    close(graceMs = 0) {
      closing ??= (async () => {
        draining = true;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const session of sessions) session.close();
        h1.closeIdleConnections();
        const until = Date.now() + graceMs;
        while (inFlight > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
        for (const socket of sockets) socket.destroy();
        await closed;
      })();
      return closing;
    },
  };
}
