import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { ConnectRouter, ContextValues } from "@connectrpc/connect";
import { errorInterceptor } from "../api/index.js";
import type { Config } from "../config/index.js";
import { AppError } from "../errors/index.js";
import { applyCors, sendError, sendJson, serveHttp, type Listening, type Request, type Response } from "../http/index.js";
import type { Logger, Metrics } from "../telemetry/index.js";

export type ApiServerOptions = {
  config: Config;
  logger: Logger;
  metrics: Pick<Metrics, "registry" | "rpcDuration">;
  port: number;
  /** Connect/gRPC/gRPC-Web services. */
  routes: (router: ConnectRouter) => void;
  /** Plain HTTP paths (REST); returns false when the path is not one of them. */
  handleRest: (req: Request, res: Response) => Promise<boolean>;
  contextValues?: (req: Request) => ContextValues;
  /** Extra fields of `/health`. */
  health: Record<string, unknown>;
  /** Dependencies answer (`/ready` is also false once draining starts). */
  ready: () => Promise<boolean>;
};

/**
 * The HTTP face shared by chat-node and presence: one port for Connect, gRPC and gRPC-Web
 * (HTTP/2 cleartext and HTTP/1.1), the process's REST paths, `/health`, `/ready` and `/metrics`,
 * CORS and security headers on every response, errors as `{ error: { code, message } }`.
 */
export async function serveApi(o: ApiServerOptions): Promise<Listening & { stopReady(): void }> {
  let ready = true;
  const fallback = async (req: Request, res: Response) => {
    try {
      const path = (req.url ?? "/").split("?")[0];
      if (path === "/health") return sendJson(res, 200, { status: "ok", ...o.health });
      if (path === "/ready") {
        const ok = ready && (await o.ready().catch(() => false));
        return sendJson(res, ok ? 200 : 503, { status: ok ? "ready" : "not ready" });
      }
      if (path === "/metrics") {
        res.writeHead(200, { "content-type": o.metrics.registry.contentType });
        return res.end(await o.metrics.registry.metrics());
      }
      if (!(await o.handleRest(req, res))) sendJson(res, 404, { error: { code: "not_found", message: "no such route" } });
    } catch (error) {
      if (AppError.from(error).code === "internal") o.logger.error({ err: error, url: req.url }, "http call failed");
      sendError(res, error);
    }
  };
  const connectHandler = connectNodeAdapter({
    routes: o.routes,
    contextValues: o.contextValues ? (req) => o.contextValues!(req as Request) : undefined,
    interceptors: [errorInterceptor(o.logger, o.metrics)],
    readMaxBytes: o.config.maxRequestBytes,
    fallback: (req, res) => void fallback(req, res as Response),
  });
  const server = await serveHttp(
    (req, res) => {
      if (applyCors(req, res, o.config.corsOrigins)) return;
      connectHandler(req, res);
    },
    { host: o.config.bindHost, port: o.port, headersTimeoutMs: o.config.httpHeadersTimeoutMs },
  );
  return { ...server, close: server.close, stopReady: () => { ready = false; } };
}
