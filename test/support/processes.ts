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

export type ServiceProcess = {
  name: string;
  port: number;
  child: ChildProcess;
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited: Promise<number | string | null>;
  signal(signal: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it is gone. */
  stop(graceMs?: number): Promise<void>;
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

/**
 * Starts `cmd/<command>/main.ts` as a real child process (stdout/stderr to
 * test-results/logs/<name>.log) and waits until `http://127.0.0.1:<port><readyPath>` answers 200.
 */
export async function startService(
  command: string,
  options: { name: string; port: number; env: Record<string, string>; readyPath?: string; readyTimeoutMs?: number },
): Promise<ServiceProcess> {
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
  const service: ServiceProcess = {
    name: options.name,
    port: options.port,
    child,
    exited,
    signal: (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    async stop(graceMs = 8_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGCONT");
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${options.name} exited during start (code ${child.exitCode}); see test-results/logs/${options.name}.log`);
    try {
      const res = await fetch(`http://127.0.0.1:${options.port}${options.readyPath ?? "/ready"}`);
      if (res.ok) return service;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await service.stop(100);
      throw new Error(`${options.name} not ready in time; see test-results/logs/${options.name}.log`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
