/**
 * A throwaway cluster for one benchmark run: a fresh PostgreSQL database (migrated by the first
 * chat-node), a fresh Redis key prefix, a random JWT secret, and chat-node / gateway / presence
 * processes on free ports (`cmd/<process>/main.ts`, as tests start them). Rate limits are off.
 * Logs go to load/reports/logs/<run>/<process>.log. `stop()` ends every process (SIGTERM, then
 * SIGKILL), drops the database and deletes the Redis keys; it is idempotent and also runs on
 * Ctrl-C through `onExit` hooks.
 *
 * Imports nothing from internal/: the processes are black boxes reached over their ports.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, mkdirSync } from "node:fs";
import * as net from "node:net";
import { Redis } from "ioredis";
import pg from "pg";

export const ROOT = new URL("../", import.meta.url).pathname;
export const REPORTS_DIR = `${ROOT}load/reports`;
const ADMIN_DATABASE_URL = process.env.DATABASE_URL ?? "postgresql://chatuser:chatpass@localhost:5432/chatdb";
const REDIS_URL = process.env.REDIS_URL ?? "redis://localhost:6379";

export const freePort = () => new Promise<number>((resolve, reject) => {
  const s = net.createServer();
  s.once("error", reject);
  s.listen(0, "127.0.0.1", () => {
    const { port } = s.address() as net.AddressInfo;
    s.close(() => resolve(port));
  });
});

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Cleanup hooks run once on normal exit paths and on SIGINT/SIGTERM (children killed, reports written). */
const exitHooks: (() => Promise<void> | void)[] = [];
export function onExit(hook: () => Promise<void> | void): () => void {
  exitHooks.push(hook);
  return () => { const i = exitHooks.indexOf(hook); if (i >= 0) exitHooks.splice(i, 1); };
}
export async function runExitHooks(): Promise<void> {
  while (exitHooks.length > 0) {
    const hook = exitHooks.pop()!;
    try { await hook(); } catch (error) { console.error("cleanup failed:", error); }
  }
}

/**
 * A load tool's entry point: runs `main` (its exit code), prints a failure, always runs the exit
 * hooks (stopping every process the tool started), then exits with that code (1 on failure).
 */
export async function runCli(main: () => Promise<number>): Promise<never> {
  let code = 1;
  try {
    code = await main();
  } catch (error) {
    console.error(error);
  } finally {
    await runExitHooks();
  }
  process.exit(code);
}

/** Aborted by the first Ctrl-C; scenarios stop sending and write a partial report. A second Ctrl-C exits at once. */
export const interrupted = new AbortController();
let signals = 0;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    signals++;
    if (signals === 1) {
      console.error(`\n${sig}: stopping, writing a partial report (Ctrl-C again to exit at once)`);
      interrupted.abort();
    } else {
      void runExitHooks().finally(() => process.exit(130));
    }
  });
}

export type ServiceKind = "chat-node" | "gateway" | "presence" | "inbox-worker" | "kafka-mirror";

export type Service = {
  name: string;
  kind: ServiceKind;
  port: number;
  url: string;
  child: ChildProcess;
  pid: number;
  stop(graceMs?: number): Promise<void>;
};

export type Cluster = {
  run: string;
  databaseUrl: string;
  redisPrefix: string;
  jwtSecret: string;
  nodes: Service[];
  gateways: Service[];
  presence: Service | null;
  /** The inbox worker and the Kafka mirror, when `workers` was asked for. */
  workers: Service[];
  services(): Service[];
  stop(): Promise<void>;
};

export type ClusterSpec = {
  /** Label used in database, prefix and log names. */
  name: string;
  chatNodes?: number;
  gateways?: number;
  presence?: boolean;
  /** Also run an inbox worker and a Kafka mirror (the mirror needs KAFKA_BROKERS in `env`). */
  workers?: boolean;
  /** Extra environment for every process (e.g. CHAT_ACTOR_COMMIT_PARALLEL). */
  env?: Record<string, string>;
  /** Keep the database and Redis keys after stop (for inspection). Default: env KEEP_DB=1. */
  keepData?: boolean;
};

async function createDatabase(name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

async function dropDatabase(name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

async function deleteRedisKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}

async function waitReady(service: Service, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (service.child.exitCode !== null || service.child.signalCode !== null) {
      throw new Error(`${service.name} exited during start; see its log under load/reports/logs/`);
    }
    if (await fetch(`${service.url}/ready`).then((r) => r.ok, () => false)) return;
    if (Date.now() > deadline) throw new Error(`${service.name} not ready within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/**
 * Starts the processes: chat-nodes first (the first one migrates the fresh database), then
 * presence and gateways (which call every chat-node, round-robin). Waits for /ready everywhere
 * and for the ring to settle.
 */
export async function startCluster(spec: ClusterSpec): Promise<Cluster> {
  const run = `${spec.name.replace(/[^a-z0-9]/gi, "").toLowerCase()}${Date.now().toString(36)}`;
  const dbName = `load_${run}`;
  const databaseUrl = await createDatabase(dbName);
  const redisPrefix = `ld${run}`.slice(0, 32);
  const jwtSecret = randomBytes(24).toString("hex");
  const logDir = `${REPORTS_DIR}/logs/${run}`;
  mkdirSync(logDir, { recursive: true });
  const services: Service[] = [];
  let stopped = false;

  const baseEnv = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "/root",
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    CHAT_REDIS_PREFIX: redisPrefix,
    JWT_SECRET: jwtSecret,
    LOG_LEVEL: process.env.LOAD_LOG_LEVEL ?? "warn",
    CHAT_RATELIMIT_ENABLED: "false",
    ...spec.env,
  };

  const launch = (kind: ServiceKind, name: string, port: number, env: Record<string, string>): Service => {
    const log = createWriteStream(`${logDir}/${name}.log`, { flags: "a" });
    // Each process may hold ~20,000 files here (the hard limit); the harness keeps every process
    // under that by spreading sockets over several gateways and load workers.
    const child = spawn(process.execPath, ["--import", "tsx", `cmd/${kind}/main.ts`], {
      cwd: ROOT,
      env: { ...baseEnv, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout!.pipe(log);
    child.stderr!.pipe(log);
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const service: Service = {
      name, kind, port, url: `http://127.0.0.1:${port}`, child, pid: child.pid!,
      async stop(graceMs = 5_000) {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        await exited;
        clearTimeout(timer);
      },
    };
    services.push(service);
    return service;
  };

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.all(services.map((s) => s.stop()));
    if (!(spec.keepData ?? process.env.KEEP_DB === "1")) {
      await dropDatabase(dbName).catch((e: unknown) => console.error(`could not drop ${dbName}:`, e));
      await deleteRedisKeys(redisPrefix).catch((e: unknown) => console.error(`could not delete ${redisPrefix}:*:`, e));
    }
  };
  const removeHook = onExit(stop);

  try {
    const nodes: Service[] = [];
    for (let i = 0; i < (spec.chatNodes ?? 1); i++) {
      const port = await freePort();
      const node = launch("chat-node", `chat-node-${i + 1}`, port, {
        CHAT_NODE_ID: `${run}-n${i + 1}`, CHAT_NODE_PORT: String(port), CHAT_NODE_GRPC_PORT: String(await freePort()),
      });
      nodes.push(node);
      // The first node migrates the fresh database; the others start once it is ready.
      if (i === 0) await waitReady(node, 60_000);
    }
    let presence: Service | null = null;
    if (spec.presence) {
      const port = await freePort();
      presence = launch("presence", "presence", port, { CHAT_PRESENCE_PORT: String(port) });
    }
    const workers: Service[] = [];
    if (spec.workers) {
      const inboxPort = await freePort();
      workers.push(launch("inbox-worker", "inbox-worker", inboxPort, { CHAT_INBOX_METRICS_PORT: String(inboxPort) }));
      const mirrorPort = await freePort();
      workers.push(launch("kafka-mirror", "kafka-mirror", mirrorPort, { CHAT_MIRROR_METRICS_PORT: String(mirrorPort) }));
    }
    const gateways: Service[] = [];
    for (let i = 0; i < (spec.gateways ?? 1); i++) {
      const port = await freePort();
      gateways.push(launch("gateway", `gateway-${i + 1}`, port, {
        CHAT_GATEWAY_PORT: String(port),
        CHAT_GATEWAY_API_URL: nodes.map((n) => n.url).join(","),
      }));
    }
    await Promise.all(services.map((s) => waitReady(s, 60_000)));
    if (nodes.length > 1) await sleep(1_500); // let every node see the full ring
    return {
      run, databaseUrl, redisPrefix, jwtSecret, nodes, gateways, presence, workers,
      services: () => [...services],
      stop: async () => { removeHook(); await stop(); },
    };
  } catch (error) {
    removeHook();
    await stop();
    throw error;
  }
}

/** Sums a Prometheus counter/gauge (all label sets whose line starts with `name`) over the given services. */
export async function scrapeMetric(services: Service[], name: string): Promise<number> {
  let total = 0;
  for (const s of services) {
    const text = await fetch(`${s.url}/metrics`).then((r) => r.text(), () => "");
    for (const line of text.split("\n")) if (line.startsWith(name)) total += Number(line.split(" ").at(-1));
  }
  return total;
}
