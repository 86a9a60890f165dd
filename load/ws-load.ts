/**
 * WebSocket load generator: send→deliver latency, loss, duplicates and order, over a cluster it
 * starts itself (fresh database, fresh Redis prefix, rate limits off).
 *
 *   npm run load:ws -- --scenario=a            # 1,000 msg/s for 2 min, 10,000 clients
 *   npm run load:ws -- --scenario=b --short    # step ramp: highest rate with p99 < 200 ms
 *   npm run load:ws -- --scenario=c            # 50,000 idle connections + presence heartbeats, gateway RSS
 *   npm run load:ws -- --scenario=d            # fan-out in one 1,000-member group
 *   npm run load:ws -- --scenario=smoke        # a few seconds, a few hundred clients (npm test)
 *
 * Overrides: --clients=N --conversation-size=K --rate=R --seconds=S --steps=500,1000,… --step-seconds=S
 * --nodes=N --gateways=G --workers=W --heartbeat-ms=MS --idle-seconds=S (also as env, e.g. CLIENTS=).
 *
 * Clients are users (one socket each) in conversations of K consecutive users; every client joins
 * its conversation. The parent forks workers (load/ws-worker.ts, ≤ 10,000 sockets each), tells
 * each to send its share of the rate as WebSocket `send` frames, merges their per-second HDR
 * histograms, and prints progress every second. At the end it compares what every client received
 * with each conversation's committed last seq in PostgreSQL (lost / duplicated / out of order),
 * then writes load/reports/<time>-ws-<scenario>.{json,html}. Ctrl-C stops sending, drains, and
 * writes the partial report; the cluster and the workers are always stopped.
 *
 * Imports only internal/gen (through load/seed.ts and load/ws-worker.ts).
 */
import { fork, type ChildProcess } from "node:child_process";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import hdr from "hdr-histogram-js";
import { PresenceStatus } from "../internal/gen/chat/v1/events_pb.js";
import { PresenceService } from "../internal/gen/chat/v1/presence_pb.js";
import { interrupted, onExit, ROOT, runCli, scrapeMetric, sleep, startCluster, type Cluster } from "./cluster.js";
import { startProcSampler, summarizeProcs, type ProcSampler } from "./proc-stats.js";
import { latencyBars, procCharts, writeReport, type Chart, type Target } from "./report.js";
import { lastSeqs, seedConversations, seedUsers } from "./seed.js";
import { newHistogram, type Assignment, type Counters, type FromWorker, type ToWorker } from "./ws-worker.js";

export type WsScenario = {
  name: string;
  title: string;
  clients: number;
  /** Users per conversation; 0 = clients join nothing (idle). */
  conversationSize: number;
  nodes: number;
  gateways: number;
  workers: number;
  /** Start the presence service (the gateways report their connections to presence through Redis themselves). */
  presence?: boolean;
  /** Extra client-side PresenceService.Heartbeat RPCs per client at this period (devices beating over RPC); 0 = none. */
  heartbeatMs: number;
  /**
   * Sending phases in order; rate 0 = idle for that long. A `warmup` phase (actor activation, JIT)
   * is drained and then dropped from every figure except loss/duplicates/order.
   */
  phases: { rate: number; seconds: number; warmup?: boolean }[];
  /** Ramp: stop after the first phase whose p99 or throughput misses. */
  ramp?: { p99Ms: number };
  /** Reconnect storm: kill -9 gateway-1 this long into the measured phase; its clients resume on gateway-2. */
  storm?: { killAfterSeconds: number };
  targets: (r: WsResult) => Target[];
};

type Histogram = ReturnType<typeof newHistogram>;

export type PhaseResult = {
  rate: number; seconds: number; sentPerSecond: number; ackedPerSecond: number; deliveredPerSecond: number;
  p50Ms: number; p95Ms: number; p99Ms: number; maxMs: number; ackP99Ms: number; sendErrors: number; pass?: boolean;
};

export type WsResult = {
  scenario: string;
  partial: boolean;
  clients: number;
  connected: number;
  connectFailures: number;
  connectSeconds: number;
  openAtEnd: number;
  /** Reconnect storm: clients of the killed gateway, how many resumed, seconds until all had. */
  storm: { clients: number; reconnected: number; seconds: number | null } | null;
  conversations: number;
  conversationSize: number;
  nodes: number;
  gateways: number;
  workers: number;
  sendSeconds: number;
  sent: number;
  acked: number;
  sendErrors: number;
  sentPerSecond: number;
  ackedPerSecond: number;
  deliveredPerSecond: number;
  deliveries: { expected: number; received: number; lost: number; duplicated: number; outOfOrder: number };
  latencyMs: { p50: number; p90: number; p95: number; p99: number; p999: number; max: number; count: number };
  ackLatencyMs: { p50: number; p95: number; p99: number; max: number };
  heartbeats: { sent: number; errors: number; p99Ms: number };
  /** Presence as the presence service reports it for up to 500 connected users, sampled evenly, at the end. */
  presenceSample: { asked: number; online: number } | null;
  closes: number;
  errorCodes: Record<string, number>;
  closeCodes: Record<string, number>;
  phases: PhaseResult[];
  bestRampRate: number | null;
  /** Gateway RSS before the clients connected, while idle with them, and the peak; KiB per connection above the baseline. */
  gatewayRssMiB: { baseline: number[]; idle: number[]; peak: number[]; totalIdle: number; perConnectionKiB: number } | null;
  /** From the chat-nodes' /metrics at the end: how the send path batched and how long commits took. */
  chatNode: Record<string, number>;
  processes: ReturnType<typeof summarizeProcs>;
  report?: { json: string; html: string };
};

const ms = (h: Histogram, p: number) => Math.round(h.getValueAtPercentile(p) / 10) / 100;
const mib = (b: number) => Math.round(b / 1048576);

// ---------------------------------------------------------------------------------------------
// Scenarios

function options(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const a of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (m) out.set(m[1]!, m[2] ?? "true");
  }
  return out;
}

const warmup = (rate: number, seconds: number) => ({ rate, seconds, warmup: true });

/** A scenario by name, SHORT or full, with overrides (`clients`, `rate`, `seconds`, …). */
export function wsScenario(name: string, short: boolean, o: Map<string, string> = new Map()): WsScenario {
  const num = (key: string, fallback: number) => {
    const env = process.env[key.toUpperCase().replace(/-/g, "_")];
    const v = o.get(key) ?? env;
    return v === undefined ? fallback : Number(v);
  };
  const steps = (fallback: number[]) => (o.get("steps") ?? process.env.STEPS)?.split(",").map(Number) ?? fallback;
  const base = (clients: number) => ({
    clients: num("clients", clients),
    nodes: num("nodes", 1),
    workers: num("workers", Math.max(2, Math.ceil(num("clients", clients) / 10_000))),
  });
  switch (name) {
    case "a": {
      const rate = num("rate", 1000);
      return {
        name: "a", title: `(a) ${rate} msg/s with ${num("clients", short ? 2000 : 10_000)} connected clients`,
        ...base(short ? 2000 : 10_000), conversationSize: num("conversation-size", 5), gateways: num("gateways", 1), heartbeatMs: num("heartbeat-ms", 0),
        phases: [warmup(Math.round(rate / 4), num("warmup-seconds", 5)), { rate, seconds: num("seconds", short ? 20 : 120) }],
        targets: (r) => [
          { name: "send→deliver p95", target: "< 50 ms", measured: `${r.latencyMs.p95} ms`, pass: r.latencyMs.p95 < 50 },
          { name: "send→deliver p99", target: "< 100 ms", measured: `${r.latencyMs.p99} ms`, pass: r.latencyMs.p99 < 100 },
          { name: "lost deliveries", target: "0", measured: String(r.deliveries.lost), pass: r.deliveries.lost === 0 },
          { name: "sustained durable rate", target: `${rate} msg/s`, measured: `${r.ackedPerSecond} msg/s`, pass: r.ackedPerSecond >= rate * 0.98 },
          { name: "connected clients", target: String(r.clients), measured: String(r.connected), pass: r.connected === r.clients },
        ],
      };
    }
    case "b": {
      const p99Ms = num("p99-ms", 200);
      return {
        name: "b", title: `(b) step ramp: highest durable rate with send→deliver p99 < ${p99Ms} ms`,
        ...base(2000), conversationSize: num("conversation-size", 2), gateways: num("gateways", 1), heartbeatMs: 0,
        phases: [warmup(200, num("warmup-seconds", 5)), ...steps(short ? [500, 1000, 2000, 3000] : [500, 1000, 1500, 2000, 2500, 3000, 4000, 5000]).map((rate) => ({ rate, seconds: num("step-seconds", short ? 6 : 12) }))],
        ramp: { p99Ms },
        targets: (r) => [
          { name: `highest rate with p99 < ${p99Ms} ms (durable)`, target: "≥ 3000 msg/s", measured: `${r.bestRampRate ?? 0} msg/s`, pass: (r.bestRampRate ?? 0) >= 3000 },
          { name: "lost deliveries", target: "0", measured: String(r.deliveries.lost), pass: r.deliveries.lost === 0 },
        ],
      };
    }
    case "c": {
      const clients = num("clients", short ? 5000 : 50_000);
      return {
        name: "c", title: `(c) ${clients} idle connections, presence reported by the gateways${num("heartbeat-ms", 0) > 0 ? ` + client heartbeats every ${num("heartbeat-ms", 0)} ms` : ""}`,
        ...base(short ? 5000 : 50_000), workers: num("workers", Math.max(2, Math.ceil(clients / 10_000))),
        conversationSize: num("conversation-size", 10), gateways: num("gateways", short ? 2 : 3), presence: true, heartbeatMs: num("heartbeat-ms", 0),
        phases: [{ rate: 0, seconds: num("idle-seconds", short ? 15 : 40) }],
        targets: (r) => [
          { name: "connections held", target: String(r.clients), measured: String(r.openAtEnd), pass: r.openAtEnd === r.clients },
          { name: "gateway RSS, all gateways", target: "< 2048 MiB", measured: `${r.gatewayRssMiB?.totalIdle ?? "?"} MiB`, pass: (r.gatewayRssMiB?.totalIdle ?? Infinity) < 2048 },
          { name: "users online in presence (sample)", target: "all", measured: `${r.presenceSample?.online ?? "?"} of ${r.presenceSample?.asked ?? "?"}`, pass: r.presenceSample !== null && r.presenceSample.online === r.presenceSample.asked },
          { name: "gateway RSS per connection", target: "(reported)", measured: `${r.gatewayRssMiB?.perConnectionKiB ?? "?"} KiB`, pass: null },
          ...(r.heartbeats.sent + r.heartbeats.errors > 0 ? [{ name: "client heartbeat RPC errors", target: "0", measured: `${r.heartbeats.errors} of ${r.heartbeats.sent + r.heartbeats.errors}`, pass: r.heartbeats.errors === 0 }] : []),
        ],
      };
    }
    case "d": {
      const rate = num("rate", short ? 10 : 20);
      return {
        name: "d", title: `(d) fan-out: ${rate} msg/s into one ${num("clients", 1000)}-member group`,
        ...base(1000), workers: num("workers", 2), conversationSize: num("clients", 1000), gateways: num("gateways", 1), heartbeatMs: 0,
        phases: [warmup(Math.max(1, Math.round(rate / 4)), num("warmup-seconds", 5)), { rate, seconds: num("seconds", short ? 10 : 40) }],
        targets: (r) => [
          { name: "deliveries/s", target: `${rate * r.clients}/s (all)`, measured: `${r.deliveredPerSecond}/s`, pass: null },
          { name: "send→deliver p99", target: "(reported)", measured: `${r.latencyMs.p99} ms`, pass: null },
          { name: "lost deliveries", target: "0", measured: String(r.deliveries.lost), pass: r.deliveries.lost === 0 },
        ],
      };
    }
    case "storm": {
      const rate = num("rate", 200);
      const clients = num("clients", short ? 2000 : 10_000);
      return {
        name: "storm", title: `reconnect storm: kill -9 one of 2 gateways under ${rate} msg/s, ${Math.ceil(clients / 2)} of ${clients} clients resume on the other`,
        ...base(short ? 2000 : 10_000), conversationSize: num("conversation-size", 5), gateways: 2, heartbeatMs: 0,
        phases: [warmup(Math.max(1, Math.round(rate / 4)), num("warmup-seconds", 5)), { rate, seconds: num("seconds", short ? 20 : 40) }],
        storm: { killAfterSeconds: num("kill-after-seconds", 5) },
        targets: (r) => [
          { name: "clients resumed on the other gateway", target: String(r.storm?.clients ?? "?"), measured: String(r.storm?.reconnected ?? 0), pass: r.storm !== null && r.storm.reconnected === r.storm.clients },
          { name: "time until all resumed", target: "(reported)", measured: r.storm?.seconds === null || r.storm === null ? "not all" : `${r.storm.seconds} s`, pass: null },
          { name: "lost / duplicated / out of order", target: "0 / 0 / 0", measured: `${r.deliveries.lost} / ${r.deliveries.duplicated} / ${r.deliveries.outOfOrder}`, pass: r.deliveries.lost + r.deliveries.duplicated + r.deliveries.outOfOrder === 0 },
          { name: "send→deliver p99 (incl. the storm)", target: "(reported)", measured: `${r.latencyMs.p99} ms`, pass: null },
        ],
      };
    }
    case "smoke":
      return {
        name: "smoke", title: "smoke: a few hundred clients for a few seconds",
        clients: num("clients", 300), nodes: num("nodes", 1), workers: num("workers", 2), conversationSize: num("conversation-size", 5),
        gateways: num("gateways", 2), heartbeatMs: 0, phases: [{ rate: num("rate", 100), seconds: num("seconds", 4) }],
        targets: (r) => [
          { name: "lost / duplicated / out of order", target: "0 / 0 / 0", measured: `${r.deliveries.lost} / ${r.deliveries.duplicated} / ${r.deliveries.outOfOrder}`, pass: r.deliveries.lost + r.deliveries.duplicated + r.deliveries.outOfOrder === 0 },
        ],
      };
    default:
      throw new Error(`unknown scenario ${name} (a, b, c, d, storm, smoke)`);
  }
}

// ---------------------------------------------------------------------------------------------
// The run

type Worker = { child: ChildProcess; pid: number; final: Promise<Extract<FromWorker, { type: "final" }>> };

type Bucket = { counters: Counters; latency: Histogram; ackLatency: Histogram; heartbeatLatency: Histogram };
const emptyCounters = (): Counters => ({ sent: 0, acked: 0, sendErrors: 0, delivered: 0, duplicated: 0, outOfOrder: 0, closes: 0, heartbeats: 0, heartbeatErrors: 0, reconnected: 0 });
const newBucket = (): Bucket => ({ counters: emptyCounters(), latency: newHistogram(), ackLatency: newHistogram(), heartbeatLatency: newHistogram() });
const addCounters = (a: Counters, b: Counters) => { for (const k of Object.keys(a) as (keyof Counters)[]) a[k] += b[k]; };
const decode = (s: string) => hdr.decodeFromCompressedBase64(s, 32, false);

type TimelinePoint = { tS: number; rate: number; open: number; p50: number; p95: number; p99: number; max: number; ackP99: number } & Counters;

/** Prints one status line per second: on a TTY in place, otherwise every 5 s. */
function progress(line: string, force = false) {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${line}`);
  else if (force) process.stderr.write(`${line}\n`);
}

export async function runWsScenario(s: WsScenario, log: (m: string) => void = (m) => console.error(m)): Promise<WsResult> {
  const t0 = Date.now();
  const sampler: ProcSampler = startProcSampler(t0);
  sampler.track("load-gen main", process.pid);
  let cluster: Cluster | null = null;
  const workers: Worker[] = [];
  const killWorkers = () => { for (const w of workers) if (w.child.exitCode === null) w.child.kill("SIGKILL"); };
  const removeHook = onExit(killWorkers);
  try {
    log(`[${s.name}] starting cluster: ${s.nodes} chat-node(s), ${s.gateways} gateway(s)${s.presence || s.heartbeatMs > 0 ? ", presence" : ""}`);
    cluster = await startCluster({ name: `ws${s.name}`, chatNodes: s.nodes, gateways: s.gateways, presence: s.presence === true || s.heartbeatMs > 0 });
    for (const svc of cluster.services()) sampler.track(svc.name, svc.pid);

    log(`[${s.name}] seeding ${s.clients} users${s.conversationSize >= 2 ? ` in conversations of ${s.conversationSize}` : ""}`);
    const users = await seedUsers(cluster, s.clients, `${s.name.slice(0, 2)}${Date.now().toString(36)}`);
    const conversations = s.conversationSize >= 2
      ? await seedConversations(cluster, users, s.conversationSize, (d, n) => progress(`[${s.name}] conversations ${d}/${n}`, d % 2000 === 0))
      : [];
    const conversationOf = new Map<number, string>();
    for (const c of conversations) for (const i of c.memberIndexes) conversationOf.set(i, c.id);
    log(`\n[${s.name}] seeded in ${Math.round((Date.now() - t0) / 1000)} s; connecting ${s.clients} clients through ${s.workers} worker(s)`);

    // Workers: client i → worker i % W, gateway i % G.
    const byWorker: Assignment[][] = Array.from({ length: s.workers }, () => []);
    users.forEach((u, i) => byWorker[i % s.workers]!.push({
      token: u.token, conversationId: conversationOf.get(i) ?? null,
      gatewayUrl: cluster!.gateways[i % s.gateways]!.url, deviceId: `d${i}`,
      ...(s.storm ? { fallbackGatewayUrl: cluster!.gateways[(i + 1) % s.gateways]!.url } : {}),
    }));
    // Storm bookkeeping: clients of the gateway that gets killed, and how long until all resumed.
    const stormClients = s.storm ? users.filter((_, i) => i % s.gateways === 0 && conversationOf.has(i)).length : 0;
    let killedAt = 0;
    let stormSeconds: number | null = null;
    let bucket = newBucket();
    const total = newBucket();
    const opens = new Map<number, number>();
    const connecting = new Map<number, number>();
    const connectedMsgs: Extract<FromWorker, { type: "connected" }>[] = [];
    for (let w = 0; w < s.workers; w++) {
      const child = fork(`${ROOT}load/ws-worker.ts`, [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
      const final = new Promise<Extract<FromWorker, { type: "final" }>>((resolve, reject) => {
        child.on("message", (m: FromWorker) => {
          if (m.type === "tick") {
            addCounters(bucket.counters, m.counters);
            addCounters(total.counters, m.counters);
            for (const [key, text] of [["latency", m.latency], ["ackLatency", m.ackLatency], ["heartbeatLatency", m.heartbeatLatency]] as const) {
              const h = decode(text);
              bucket[key].add(h);
              total[key].add(h);
            }
            opens.set(w, m.open);
            if (killedAt > 0 && stormSeconds === null && total.counters.reconnected >= stormClients) stormSeconds = (Date.now() - killedAt) / 1000;
          } else if (m.type === "progress") connecting.set(w, m.connected);
          else if (m.type === "connected") connectedMsgs.push(m);
          else if (m.type === "final") resolve(m);
        });
        child.once("exit", (code) => reject(new Error(`worker ${w} exited (${code})`)));
      });
      final.catch(() => {});
      workers.push({ child, pid: child.pid!, final });
      sampler.track("load-gen workers", child.pid!);
      child.send({ type: "init", workerId: w, assignments: byWorker[w]!, connectConcurrency: 100, presenceUrl: cluster.presence?.url ?? null, heartbeatMs: s.heartbeatMs } satisfies ToWorker);
    }
    const tConnect = Date.now();
    const gatewayBaseline = cluster.gateways.map((g) => sampler.latest().get(g.name)?.rssBytes ?? 0);
    while (connectedMsgs.length < s.workers) {
      if (interrupted.signal.aborted) throw new Error("interrupted while connecting");
      if (workers.some((w) => w.child.exitCode !== null)) throw new Error("a worker died while connecting");
      progress(`[${s.name}] connected ${[...connecting.values()].reduce((a, b) => a + b, 0)}/${s.clients}`, (Date.now() - tConnect) % 5000 < 250);
      await sleep(250);
    }
    const connected = connectedMsgs.reduce((n, m) => n + m.connected, 0);
    const connectFailures = connectedMsgs.reduce((n, m) => n + m.failed, 0);
    const connectSeconds = Math.round((Date.now() - tConnect) / 100) / 10;
    log(`\n[${s.name}] ${connected} connected${connectFailures ? `, ${connectFailures} FAILED (first: ${connectedMsgs.find((m) => m.firstError)?.firstError})` : ""} in ${connectSeconds} s`);

    // Phases, with a per-second timeline.
    const timeline: TimelinePoint[] = [];
    let currentRate = 0;
    let phaseBucket = newBucket();
    const flush = () => {
      const b = bucket;
      bucket = newBucket();
      phaseBucket.latency.add(b.latency);
      phaseBucket.ackLatency.add(b.ackLatency);
      addCounters(phaseBucket.counters, b.counters);
      const point: TimelinePoint = {
        tS: Math.round((Date.now() - t0) / 1000), rate: currentRate, open: [...opens.values()].reduce((a, c) => a + c, 0),
        p50: ms(b.latency, 50), p95: ms(b.latency, 95), p99: ms(b.latency, 99), max: Math.round(b.latency.maxValue / 100) / 10, ackP99: ms(b.ackLatency, 99),
        ...b.counters,
      };
      timeline.push(point);
      progress(`[${s.name}] ${point.tS}s target ${currentRate}/s sent ${point.sent}/s acked ${point.acked}/s delivered ${point.delivered}/s p99(1s) ${point.p99} ms p99(all) ${ms(total.latency, 99)} ms errors ${total.counters.sendErrors} closes ${total.counters.closes} open ${point.open}${s.heartbeatMs ? ` heartbeats ${point.heartbeats}/s` : ""}`, point.tS % 5 === 0);
    };
    const clock = setInterval(flush, 1000);
    const phases: PhaseResult[] = [];
    let bestRampRate: number | null = s.ramp ? 0 : null;
    let measureFrom = Date.now();
    let gatewayIdle: number[] = [];
    for (const phase of s.phases) {
      if (interrupted.signal.aborted) break;
      currentRate = phase.rate;
      phaseBucket = newBucket();
      const shares = workers.map((_, w) => (phase.rate * byWorker[w]!.length) / s.clients);
      workers.forEach((w, i) => w.child.send({ type: "start", ratePerSecond: shares[i]! } satisfies ToWorker));
      const phaseEnd = Date.now() + phase.seconds * 1000;
      const killer = s.storm && !phase.warmup && killedAt === 0
        ? setTimeout(() => {
            killedAt = Date.now();
            log(`\n[${s.name}] kill -9 ${cluster!.gateways[0]!.name}: ${stormClients} clients reconnect to ${cluster!.gateways[1]!.name}`);
            cluster!.gateways[0]!.child.kill("SIGKILL");
          }, s.storm.killAfterSeconds * 1000)
        : undefined;
      while (Date.now() < phaseEnd && !interrupted.signal.aborted) await sleep(100);
      clearTimeout(killer);
      if (phase.rate === 0) gatewayIdle = cluster.gateways.map((g) => sampler.latest().get(g.name)?.rssBytes ?? 0);
      if (phase.warmup) {
        workers.forEach((w) => w.child.send({ type: "stop" } satisfies ToWorker));
        await sleep(2_500);
        log(`\n[${s.name}] warm-up done (${phase.rate}/s for ${phase.seconds} s; not counted)`);
        const keep = { duplicated: total.counters.duplicated, outOfOrder: total.counters.outOfOrder, closes: total.counters.closes };
        Object.assign(total, newBucket());
        Object.assign(total.counters, keep);
        measureFrom = Date.now();
        continue;
      }
      if (s.ramp) {
        // Let the step's last messages arrive before judging it.
        workers.forEach((w) => w.child.send({ type: "stop" } satisfies ToWorker));
        await sleep(1500);
      }
      const b = phaseBucket;
      const result: PhaseResult = {
        rate: phase.rate, seconds: phase.seconds,
        sentPerSecond: Math.round(b.counters.sent / phase.seconds), ackedPerSecond: Math.round(b.counters.acked / phase.seconds),
        deliveredPerSecond: Math.round(b.counters.delivered / phase.seconds),
        p50Ms: ms(b.latency, 50), p95Ms: ms(b.latency, 95), p99Ms: ms(b.latency, 99), maxMs: Math.round(b.latency.maxValue / 100) / 10,
        ackP99Ms: ms(b.ackLatency, 99), sendErrors: b.counters.sendErrors,
      };
      if (s.ramp) {
        result.pass = result.p99Ms < s.ramp.p99Ms && result.ackedPerSecond >= phase.rate * 0.95 && result.sendErrors === 0;
        log(`\n[${s.name}] step ${phase.rate}/s: acked ${result.ackedPerSecond}/s p50 ${result.p50Ms} p99 ${result.p99Ms} ms ack p99 ${result.ackP99Ms} ms errors ${result.sendErrors} → ${result.pass ? "holds" : "MISSES"}`);
        phases.push(result);
        if (!result.pass) break;
        bestRampRate = phase.rate;
      } else {
        phases.push(result);
      }
    }
    const sendStarted = measureFrom;
    const sendSeconds = (Date.now() - sendStarted) / 1000;
    workers.forEach((w) => w.child.send({ type: "stop" } satisfies ToWorker));

    // Drain: until nothing arrives for 2 s (at most 30 s).
    log(`\n[${s.name}] draining`);
    const drainDeadline = Date.now() + 30_000;
    let quiet = 0;
    let lastDelivered = total.counters.delivered;
    while (Date.now() < drainDeadline && quiet < 4) {
      await sleep(500);
      quiet = total.counters.delivered === lastDelivered ? quiet + 1 : 0;
      lastDelivered = total.counters.delivered;
    }
    clearInterval(clock);
    flush();
    const seqs = await lastSeqs(cluster, conversations.map((c) => c.id));
    const chatNode = await chatNodeMetrics(cluster);
    let presenceSample: WsResult["presenceSample"] = null;
    if (cluster.presence) {
      const client = createClient(PresenceService, createConnectTransport({ baseUrl: cluster.presence.url, httpVersion: "1.1" }));
      const step = Math.max(1, Math.floor(users.length / 500));
      const userIds = users.filter((_, i) => i % step === 0).slice(0, 500).map((u) => u.id);
      const res = await client.batchGetStatus({ userIds }, { headers: { authorization: `Bearer ${users[0]!.token}` } }).catch(() => null);
      presenceSample = { asked: userIds.length, online: res?.presences.filter((p) => p.status === PresenceStatus.ONLINE).length ?? -1 };
    }
    workers.forEach((w) => w.child.send({ type: "finish", lastSeqs: seqs } satisfies ToWorker));
    const finals = await Promise.all(workers.map((w) => Promise.race([w.final, sleep(20_000).then(() => null)])));
    const openAtEnd = [...opens.values()].reduce((a, c) => a + c, 0);
    const merge = (key: "errorCodes" | "closeCodes") => {
      const out: Record<string, number> = {};
      for (const f of finals) for (const [k, v] of Object.entries(f?.[key] ?? {})) out[k] = (out[k] ?? 0) + v;
      return out;
    };
    workers.forEach((w) => w.child.send({ type: "exit" } satisfies ToWorker));

    const processes = summarizeProcs(sampler.series(), (sendStarted - t0), Date.now() - t0);
    const gwSeries = sampler.series().filter((x) => x.label.startsWith("gateway-"));
    const c = total.counters;
    const sendWindow = Math.max(1, sendSeconds);
    const result: WsResult = {
      scenario: s.name, partial: interrupted.signal.aborted,
      clients: s.clients, connected, connectFailures, connectSeconds, openAtEnd,
      conversations: conversations.length, conversationSize: s.conversationSize, nodes: s.nodes, gateways: s.gateways, workers: s.workers,
      sendSeconds: Math.round(sendSeconds * 10) / 10, sent: c.sent, acked: c.acked, sendErrors: c.sendErrors,
      sentPerSecond: Math.round(c.sent / sendWindow), ackedPerSecond: Math.round(c.acked / sendWindow), deliveredPerSecond: Math.round(c.delivered / sendWindow),
      deliveries: {
        expected: finals.reduce((n, f) => n + (f?.expected ?? 0), 0), received: finals.reduce((n, f) => n + (f?.received ?? 0), 0),
        lost: finals.some((f) => f === null) ? -1 : finals.reduce((n, f) => n + f!.lost, 0), duplicated: c.duplicated, outOfOrder: c.outOfOrder,
      },
      latencyMs: { p50: ms(total.latency, 50), p90: ms(total.latency, 90), p95: ms(total.latency, 95), p99: ms(total.latency, 99), p999: ms(total.latency, 99.9), max: Math.round(total.latency.maxValue / 100) / 10, count: total.latency.totalCount },
      ackLatencyMs: { p50: ms(total.ackLatency, 50), p95: ms(total.ackLatency, 95), p99: ms(total.ackLatency, 99), max: Math.round(total.ackLatency.maxValue / 100) / 10 },
      heartbeats: { sent: c.heartbeats, errors: c.heartbeatErrors, p99Ms: ms(total.heartbeatLatency, 99) },
      closes: c.closes, errorCodes: merge("errorCodes"), closeCodes: merge("closeCodes"),
      presenceSample, phases, bestRampRate, chatNode,
      storm: s.storm ? { clients: stormClients, reconnected: c.reconnected, seconds: stormSeconds } : null,
      gatewayRssMiB: gwSeries.length === 0 ? null : (() => {
        const idle = gatewayIdle.length ? gatewayIdle : gwSeries.map((x) => x.samples.at(-1)?.rssBytes ?? 0);
        const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
        return {
          baseline: gatewayBaseline.map(mib), idle: idle.map(mib),
          peak: gwSeries.map((x) => mib(Math.max(0, ...x.samples.map((y) => y.rssBytes)))),
          totalIdle: mib(sum(idle)),
          perConnectionKiB: Math.round(((sum(idle) - sum(gatewayBaseline)) / Math.max(1, openAtEnd) / 1024) * 10) / 10,
        };
      })(),
      processes,
    };
    sampler.stop();
    const targets = s.targets(result);
    const charts: Chart[] = [
      { kind: "line", title: "Throughput per second", xLabel: "seconds since start", yLabel: "per second", series: [
        { name: "target rate", points: timeline.map((p) => [p.tS, p.rate]) },
        { name: "sent", points: timeline.map((p) => [p.tS, p.sent]) },
        { name: "acked (durable)", points: timeline.map((p) => [p.tS, p.acked]) },
        { name: "delivered", points: timeline.map((p) => [p.tS, p.delivered]) },
        ...(s.heartbeatMs ? [{ name: "heartbeats", points: timeline.map((p) => [p.tS, p.heartbeats] as [number, number]) }] : []),
      ] },
      { kind: "line", title: "send→deliver latency per second (ms, log scale)", xLabel: "seconds since start", yLabel: "ms", logY: true, series: [
        { name: "p50", points: timeline.filter((p) => p.delivered > 0).map((p) => [p.tS, p.p50]) },
        { name: "p95", points: timeline.filter((p) => p.delivered > 0).map((p) => [p.tS, p.p95]) },
        { name: "p99", points: timeline.filter((p) => p.delivered > 0).map((p) => [p.tS, p.p99]) },
        { name: "max", points: timeline.filter((p) => p.delivered > 0).map((p) => [p.tS, p.max]) },
        { name: "ack p99", points: timeline.filter((p) => p.acked > 0).map((p) => [p.tS, p.ackP99]) },
      ] },
      { kind: "bars", title: "send→deliver latency histogram (deliveries per bucket)", xLabel: "ms (log buckets)", yLabel: "deliveries", bars: latencyBars(total.latency) },
      { kind: "line", title: "Open connections", xLabel: "seconds since start", yLabel: "sockets", series: [{ name: "open", points: timeline.map((p) => [p.tS, p.open]) }] },
      ...procCharts(sampler.series()),
    ];
    if (s.ramp) charts.splice(2, 0, { kind: "bars", title: "Ramp: p99 per step (ms)", xLabel: "target msg/s", yLabel: "p99 ms", bars: phases.map((p) => ({ label: String(p.rate), value: p.p99Ms })) });
    const { processes: _p, ...summary } = result;
    result.report = writeReport({
      name: `ws-${s.name}`, title: `${s.title}${result.partial ? " (PARTIAL: interrupted)" : ""}`,
      summary: { ...summary, processesDuringSend: processes.map((p) => `${p.label}: cpu ${p.cpuMeanPct}% mean / ${p.cpuMaxPct}% max, rss ${p.rssPeakMiB} MiB peak`) },
      targets, charts,
      data: { scenario: s, result, timeline, processSeries: sampler.series() },
    });
    log(`[${s.name}] report: ${result.report.html}`);
    return result;
  } finally {
    sampler.stop();
    await sleep(200);
    killWorkers();
    removeHook();
    await cluster?.stop();
  }
}

/** Send-path figures from the chat-nodes: commit transactions, their duration and batching. */
async function chatNodeMetrics(cluster: Cluster): Promise<Record<string, number>> {
  const m = (name: string) => scrapeMetric(cluster.nodes, name);
  const [txs, actorsInTx, commits, commitSeconds, batches, batchCommands, rpcCount, rpcSeconds] = await Promise.all([
    m("chat_group_commit_conversations_count"), m("chat_group_commit_conversations_sum"),
    m("chat_actor_commit_seconds_count"), m("chat_actor_commit_seconds_sum"),
    m("chat_actor_batch_size_count"), m("chat_actor_batch_size_sum"),
    m('chat_rpc_duration_seconds_count{procedure="chat.v1.MessageService/SendMessage"'), m('chat_rpc_duration_seconds_sum{procedure="chat.v1.MessageService/SendMessage"'),
  ]);
  const r2 = (x: number) => Math.round(x * 100) / 100;
  return {
    groupCommitTransactions: txs, actorBatchesPerTransaction: txs ? r2(actorsInTx / txs) : 0,
    actorCommits: commits, actorCommitMeanMs: commits ? r2((commitSeconds / commits) * 1000) : 0,
    actorBatches: batches, commandsPerActorBatch: batches ? r2(batchCommands / batches) : 0,
    sendMessageRpcs: rpcCount, sendMessageRpcMeanMs: rpcCount ? r2((rpcSeconds / rpcCount) * 1000) : 0,
  };
}

/** One-line summary for tables and logs. */
export function describe(r: WsResult): string {
  return `${r.connected}/${r.clients} clients, ${r.ackedPerSecond} msg/s acked, ${r.deliveredPerSecond} deliveries/s, p50 ${r.latencyMs.p50} ms, p95 ${r.latencyMs.p95} ms, p99 ${r.latencyMs.p99} ms, lost ${r.deliveries.lost}, dup ${r.deliveries.duplicated}, ooo ${r.deliveries.outOfOrder}, errors ${r.sendErrors}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const o = options(process.argv.slice(2));
  const name = o.get("scenario") ?? process.env.SCENARIO ?? "a";
  const short = o.has("short") || process.env.SHORT === "1";
  await runCli(async () => {
    const r = await runWsScenario(wsScenario(name, short, o));
    const { processes, ...rest } = r;
    console.log(JSON.stringify(rest, null, 2));
    console.log("processes during send:");
    console.table(processes);
    console.log(describe(r));
    console.log(`REPORT ${r.report?.json}`);
    return r.partial ? 130 : 0;
  });
}
