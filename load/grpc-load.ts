/**
 * ghz against the gRPC API: unary SendMessage requests/s and latency at a fixed concurrency.
 *
 *   npm run load:grpc                                   # 50 concurrent streams, 30 s
 *   npm run load:grpc -- --concurrency=10,50,200 --seconds=20 --conversations=100 --nodes=1
 *   npm run load:grpc -- --short                        # 8 s
 *
 * Starts its own chat-node(s) (fresh database and Redis prefix, rate limits off; gRPC is served
 * over h2c on the public port), seeds one sender in `conversations` group conversations, builds
 * a protoset with `buf build --as-file-descriptor-set`, then runs
 *
 *   ghz --insecure --protoset <set> --call chat.v1.MessageService.SendMessage -c <C> -z <S>s \
 *       -m '{"authorization":"Bearer <token>"}' -d '[{conversation_id, body, idempotency_key: "<run>-{{.RequestNumber}}"}, …]'
 *
 * (an array of messages is used round-robin, so requests spread over the conversations; every
 * idempotency key is unique). ghz comes from $GHZ, PATH or .data/bin; when absent it is installed
 * with `GOBIN=.data/bin go install github.com/bojand/ghz/cmd/ghz@v0.93.0`. The report
 * (load/reports/<time>-grpc.{json,html}) has req/s, percentiles (exact, from every request's
 * latency), a per-second timeline and CPU/RSS of each process (ghz included).
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { interrupted, onExit, REPORTS_DIR, ROOT, runCli, startCluster, type Cluster } from "./cluster.js";
import { startProcSampler, summarizeProcs } from "./proc-stats.js";
import { latencyBars, procCharts, writeReport, type Chart, type Target } from "./report.js";
import { apiClients, seedUsers } from "./seed.js";
import { ConversationKind } from "../internal/gen/chat/v1/common_pb.js";
import { newHistogram } from "./ws-worker.js";

export type GrpcOptions = { concurrency: number[]; seconds: number; conversations: number; nodes: number; warmupSeconds: number };

export type GrpcResult = {
  concurrency: number; seconds: number; count: number; rps: number; okRps: number; errors: number;
  statusCodes: Record<string, number>; errorSamples: string[];
  latencyMs: { p50: number; p90: number; p95: number; p99: number; max: number };
};

const GHZ_VERSION = "v0.93.0";

function findGhz(): string {
  const candidates = [process.env.GHZ, `${ROOT}.data/bin/ghz`].filter(Boolean) as string[];
  for (const c of candidates) if (existsSync(c)) return c;
  try {
    return execFileSync("sh", ["-c", "command -v ghz"], { encoding: "utf8" }).trim() || install();
  } catch {
    return install();
  }
  function install(): string {
    console.error(`ghz not found; installing ${GHZ_VERSION} into .data/bin (go install)`);
    mkdirSync(`${ROOT}.data/bin`, { recursive: true });
    execFileSync("go", ["install", `github.com/bojand/ghz/cmd/ghz@${GHZ_VERSION}`], { env: { ...process.env, GOBIN: `${ROOT}.data/bin` }, stdio: "inherit" });
    return `${ROOT}.data/bin/ghz`;
  }
}

function buildProtoset(): string {
  mkdirSync(REPORTS_DIR, { recursive: true });
  const out = `${REPORTS_DIR}/chat-protoset.binpb`;
  execFileSync("npx", ["buf", "build", "--as-file-descriptor-set", "-o", out], { cwd: ROOT, stdio: "inherit" });
  return out;
}

type GhzReport = {
  count: number; rps: number; statusCodeDistribution?: Record<string, number>; errorDistribution?: Record<string, number>;
  details?: { timestamp: string; latency: number; status: string; error: string }[];
};

/** Runs ghz once; resolves with its JSON report (null when interrupted). */
function runGhz(ghz: string, args: string[], onPid: (pid: number) => void): Promise<GhzReport | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(ghz, args, { stdio: ["ignore", "pipe", "pipe"] });
    onPid(child.pid!);
    const kill = () => child.kill("SIGINT");
    interrupted.signal.addEventListener("abort", kill, { once: true });
    const remove = onExit(() => { child.kill("SIGKILL"); });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => { stdout += d; });
    child.stderr.on("data", (d) => { stderr += d; });
    child.once("exit", (code) => {
      interrupted.signal.removeEventListener("abort", kill);
      remove();
      if (interrupted.signal.aborted && stdout === "") return resolve(null);
      try {
        resolve(JSON.parse(stdout) as GhzReport);
      } catch {
        reject(new Error(`ghz exited ${code}: ${stderr.slice(0, 2000)}`));
      }
    });
  });
}

async function seedSender(cluster: Cluster, conversations: number) {
  const users = await seedUsers(cluster, 2, `g${Date.now().toString(36)}`);
  const api = apiClients(cluster.nodes[0]!.url, users[0]!.token);
  const ids: string[] = [];
  for (let i = 0; i < conversations; i++) {
    const c = await api.conversations.createConversation({ kind: ConversationKind.GROUP, title: `ghz ${i}`, memberIds: [users[1]!.id] });
    ids.push(c.conversation!.id);
  }
  return { token: users[0]!.token, ids };
}

export async function runGrpcLoad(o: GrpcOptions, log: (m: string) => void = (m) => console.error(m)): Promise<{ results: GrpcResult[]; report: { json: string; html: string } }> {
  const ghz = findGhz();
  const protoset = buildProtoset();
  const t0 = Date.now();
  const sampler = startProcSampler(t0);
  log(`[grpc] starting ${o.nodes} chat-node(s)`);
  const cluster = await startCluster({ name: "grpc", chatNodes: o.nodes, gateways: 0 });
  const results: GrpcResult[] = [];
  const timelines: { concurrency: number; points: { tS: number; count: number; p50: number; p99: number }[] }[] = [];
  const total = newHistogram();
  try {
    for (const svc of cluster.services()) sampler.track(svc.name, svc.pid);
    const { token, ids } = await seedSender(cluster, o.conversations);
    const run = Date.now().toString(36);
    const target = cluster.nodes[0]!.url.replace("http://", "");
    const common = (c: number, seconds: number, tag: string) => [
      "--insecure", "--protoset", protoset, "--call", "chat.v1.MessageService.SendMessage",
      "-c", String(c), "-z", `${seconds}s`, "--connections", "1", "--duration-stop", "wait", "--format", "json",
      "-m", JSON.stringify({ authorization: `Bearer ${token}` }),
      "-d", JSON.stringify(ids.map((id) => ({ conversation_id: id, body: "ghz {{.RequestNumber}}", idempotency_key: `${run}-${tag}-{{.RequestNumber}}` }))),
      target,
    ];
    if (o.warmupSeconds > 0) {
      log(`[grpc] warm-up ${o.warmupSeconds} s`);
      await runGhz(ghz, common(10, o.warmupSeconds, "warm"), () => {});
    }
    for (const c of o.concurrency) {
      if (interrupted.signal.aborted) break;
      log(`[grpc] ghz -c ${c} for ${o.seconds} s`);
      const started = Date.now();
      const ticker = setInterval(() => {
        const cpu = [...sampler.latest()].map(([k, v]) => `${k} ${Math.round(v.cpuPct)}%`).join(", ");
        process.stderr.write(`[grpc] -c ${c}: ${Math.round((Date.now() - started) / 1000)}/${o.seconds} s; cpu: ${cpu}\n`);
      }, 5000);
      const report = await runGhz(ghz, common(c, o.seconds, `c${c}`), (pid) => sampler.track("ghz", pid)).finally(() => clearInterval(ticker));
      if (report === null) break;
      const h = newHistogram();
      const perSecond = new Map<number, ReturnType<typeof newHistogram>>();
      let ok = 0;
      const errorSamples = new Set<string>();
      const firstTs = Math.min(...(report.details ?? []).map((d) => Date.parse(d.timestamp)));
      for (const d of report.details ?? []) {
        const us = Math.max(1, Math.round(d.latency / 1000));
        h.recordValue(us);
        const sec = Math.floor((Date.parse(d.timestamp) - firstTs) / 1000);
        let ph = perSecond.get(sec);
        if (!ph) perSecond.set(sec, (ph = newHistogram()));
        ph.recordValue(us);
        if (d.status === "OK") ok++;
        else if (errorSamples.size < 5) errorSamples.add(`${d.status}: ${d.error}`);
      }
      total.add(h);
      const pct = (x: ReturnType<typeof newHistogram>, p: number) => Math.round(x.getValueAtPercentile(p) / 10) / 100;
      const seconds = o.seconds;
      results.push({
        concurrency: c, seconds, count: report.count, rps: Math.round(report.rps), okRps: Math.round(ok / seconds), errors: report.count - ok,
        statusCodes: report.statusCodeDistribution ?? {}, errorSamples: [...errorSamples],
        latencyMs: { p50: pct(h, 50), p90: pct(h, 90), p95: pct(h, 95), p99: pct(h, 99), max: Math.round(h.maxValue / 100) / 10 },
      });
      timelines.push({ concurrency: c, points: [...perSecond].sort((a, b) => a[0] - b[0]).map(([s, x]) => ({ tS: s, count: x.totalCount, p50: pct(x, 50), p99: pct(x, 99) })) });
      log(`[grpc] -c ${c}: ${results.at(-1)!.rps} req/s (${results.at(-1)!.okRps} ok/s), p50 ${results.at(-1)!.latencyMs.p50} ms, p99 ${results.at(-1)!.latencyMs.p99} ms, errors ${results.at(-1)!.errors}`);
    }
  } finally {
    sampler.stop();
    await cluster.stop();
  }
  const processes = summarizeProcs(sampler.series(), (o.warmupSeconds + 3) * 1000);
  const at50 = results.find((r) => r.concurrency === 50) ?? results[0];
  const targets: Target[] = at50 ? [
    { name: `SendMessage req/s at ${at50.concurrency} concurrent streams`, target: "(reported; seed: 1,000 msg/s)", measured: `${at50.okRps} req/s`, pass: at50.okRps >= 1000 },
    { name: "SendMessage p99", target: "< 200 ms", measured: `${at50.latencyMs.p99} ms`, pass: at50.latencyMs.p99 < 200 },
    { name: "errors", target: "0", measured: String(at50.errors), pass: at50.errors === 0 },
  ] : [];
  const charts: Chart[] = [
    { kind: "line", title: "SendMessage completions per second", xLabel: "seconds into the ghz run", yLabel: "req/s", series: timelines.map((t) => ({ name: `-c ${t.concurrency}`, points: t.points.map((p) => [p.tS, p.count]) })) },
    { kind: "line", title: "SendMessage latency per second (ms, log scale)", xLabel: "seconds into the ghz run", yLabel: "ms", logY: true, series: timelines.flatMap((t) => [
      { name: `p50 -c ${t.concurrency}`, points: t.points.map((p) => [p.tS, p.p50] as [number, number]) },
      { name: `p99 -c ${t.concurrency}`, points: t.points.map((p) => [p.tS, p.p99] as [number, number]) },
    ]) },
    { kind: "bars", title: "SendMessage latency histogram (all runs)", xLabel: "ms (log buckets)", yLabel: "requests", bars: latencyBars(total) },
    ...procCharts(sampler.series()),
  ];
  const report = writeReport({
    name: "grpc", title: `ghz: unary SendMessage over gRPC (h2c), ${o.conversations} conversations, ${o.nodes} chat-node(s)${interrupted.signal.aborted ? " (PARTIAL: interrupted)" : ""}`,
    summary: {
      results: results.map((r) => `-c ${r.concurrency}: ${r.okRps} ok req/s, p50 ${r.latencyMs.p50} ms, p95 ${r.latencyMs.p95} ms, p99 ${r.latencyMs.p99} ms, errors ${r.errors}`),
      processes: processes.map((p) => `${p.label}: cpu ${p.cpuMeanPct}% mean / ${p.cpuMaxPct}% max, rss ${p.rssPeakMiB} MiB peak`),
    },
    targets, charts,
    data: { options: o, results, timelines, processes, processSeries: sampler.series() },
  });
  log(`[grpc] report: ${report.html}`);
  return { results, report };
}

export function grpcOptions(argv: string[], short: boolean): GrpcOptions {
  const get = (k: string) => argv.find((a) => a.startsWith(`--${k}=`))?.split("=")[1] ?? process.env[k.toUpperCase()];
  return {
    concurrency: (get("concurrency") ?? "50").split(",").map(Number),
    seconds: Number(get("seconds") ?? (short ? 8 : 30)),
    conversations: Number(get("conversations") ?? 100),
    nodes: Number(get("nodes") ?? 1),
    warmupSeconds: Number(get("warmup") ?? 3),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const argv = process.argv.slice(2);
  await runCli(async () => {
    const { results, report } = await runGrpcLoad(grpcOptions(argv, argv.includes("--short") || process.env.SHORT === "1"));
    console.table(results.map((r) => ({ concurrency: r.concurrency, "req/s": r.okRps, "p50 ms": r.latencyMs.p50, "p95 ms": r.latencyMs.p95, "p99 ms": r.latencyMs.p99, errors: r.errors })));
    console.log(`REPORT ${report.json}`);
    return interrupted.signal.aborted ? 130 : 0;
  });
}
