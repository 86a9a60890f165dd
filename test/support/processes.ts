import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import * as net from "node:net";
import type { TestEnv } from "./env.js";

const ROOT = new URL("../../", import.meta.url).pathname;

/** A port the OS says is free right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => { socket.destroy(); resolve(true); });
    socket.once("error", () => resolve(false));
  });
}

export type ServiceProcess = {
  name: string;
  port: number;
  /** `http://127.0.0.1:<port>`. */
  url: string;
  child: ChildProcess;
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited: Promise<number | string | null>;
  /** Sends `signal` unless the process has already ended; does not wait. */
  signal(signal: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it is gone. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL (kill -9); resolves once it is gone. */
  kill(): Promise<void>;
};

/** The environment a service child needs to share the test's database and Redis prefix. */
export function serviceEnv(env: TestEnv, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: env.databaseUrl,
    REDIS_URL: env.config.redisUrl,
    CHAT_REDIS_PREFIX: env.redisPrefix,
    JWT_SECRET: env.config.jwtSecret,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "warn",
    NODE_ENV: "test",
    ...extra,
  };
}

export type StartServiceOptions = {
  /** Names the log file test-results/logs/<name>.log (appended to). */
  name: string;
  /** The port the service listens on (set it in `env` too); readiness is checked there. */
  port: number;
  env: Record<string, string>;
  /**
   * When the service counts as started: "http" (default) once GET `readyPath` answers 2xx, "tcp"
   * once `port` accepts connections, "none" as soon as it is spawned (the test waits itself).
   */
  ready?: "http" | "tcp" | "none";
  /** For ready "http"; default "/ready". */
  readyPath?: string;
  /** Default 30 s; then the process is killed and startService throws. */
  readyTimeoutMs?: number;
};

/**
 * Starts `cmd/<command>/main.ts` as a real child process (stdout/stderr to
 * test-results/logs/<name>.log) and waits until it is ready (see `ready`). Throws if it exits first.
 */
export async function startService(command: string, options: StartServiceOptions): Promise<ServiceProcess> {
  mkdirSync(`${ROOT}test-results/logs`, { recursive: true });
  const log = createWriteStream(`${ROOT}test-results/logs/${options.name}.log`, { flags: "a" });
  const child = spawn(process.execPath, ["--import", "tsx", `cmd/${command}/main.ts`], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  const exited = new Promise<number | string | null>((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal)));
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const service: ServiceProcess = {
    name: options.name,
    port: options.port,
    url: `http://127.0.0.1:${options.port}`,
    child,
    exited,
    signal: (signal) => {
      if (!gone()) child.kill(signal);
    },
    async stop(graceMs = 8_000) {
      if (gone()) return;
      child.kill("SIGCONT");
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
    async kill() {
      if (gone()) return;
      child.kill("SIGKILL");
      await exited;
    },
  };
  const ready = options.ready ?? "http";
  if (ready === "none") return service;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${options.name} exited during start (code ${child.exitCode}); see test-results/logs/${options.name}.log`);
    if (ready === "tcp") {
      if (await portOpen(options.port)) return service;
    } else {
      try {
        const res = await fetch(`${service.url}${options.readyPath ?? "/ready"}`);
        if (res.ok) return service;
      } catch {
        // not listening yet
      }
    }
    if (Date.now() > deadline) {
      await service.stop(100);
      throw new Error(`${options.name} not ready in time; see test-results/logs/${options.name}.log`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A chat-node or gateway on a free port (its CHAT_NODE_PORT or CHAT_GATEWAY_PORT, the other one
 * "0", and a free CHAT_NODE_GRPC_PORT), started with serviceEnv(env, extra) and ready once
 * GET /health answers.
 */
export async function startChatService(
  env: TestEnv,
  command: "chat-node" | "gateway",
  options: { name: string; extra?: Record<string, string> },
): Promise<ServiceProcess> {
  const port = await freePort();
  return startService(command, {
    name: options.name,
    port,
    readyPath: "/health",
    env: serviceEnv(env, {
      CHAT_NODE_PORT: command === "chat-node" ? String(port) : "0",
      CHAT_NODE_GRPC_PORT: String(await freePort()),
      CHAT_GATEWAY_PORT: command === "gateway" ? String(port) : "0",
      ...options.extra,
    }),
  });
}
