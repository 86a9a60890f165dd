/**
 * The standard benchmark set, one after another, each on its own fresh cluster:
 *
 *   npm run bench                 # full: ghz 30 s, (a) 2 min, (b) ramp, (d) fan-out, (c) 50k idle — about 12-15 min
 *   npm run bench -- --short      # SHORT variants — about 3-4 min
 *   npm run bench -- --only=grpc,a
 *
 * Prints a summary table (targets vs measured) and writes load/reports/<time>-bench.{json,html}
 * linking every scenario's own report. Ctrl-C stops the running scenario (its partial report is
 * written) and skips the rest.
 */
import { interrupted, runExitHooks } from "./cluster.js";
import { grpcOptions, runGrpcLoad } from "./grpc-load.js";
import { writeReport, type Target } from "./report.js";
import { describe, runWsScenario, wsScenario } from "./ws-load.js";

const argv = process.argv.slice(2);
const short = argv.includes("--short") || process.env.SHORT === "1";
const only = argv.find((a) => a.startsWith("--only="))?.slice(7).split(",") ?? ["grpc", "a", "b", "d", "storm", "c"];

type Row = { scenario: string; target: string; wanted: string; measured: string; result: string; report: string };
const rows: Row[] = [];
const details: Record<string, unknown> = {};
const push = (scenario: string, targets: Target[], report: string) => {
  for (const t of targets) rows.push({ scenario, target: t.name, wanted: t.target, measured: t.measured, result: t.pass === null ? "—" : t.pass ? "PASS" : "MISS", report });
};

const started = Date.now();
let failed = false;
for (const name of only) {
  if (interrupted.signal.aborted) break;
  try {
    if (name === "grpc") {
      const { results, report } = await runGrpcLoad(grpcOptions(argv, short));
      details.grpc = results;
      const r = results.find((x) => x.concurrency === 50) ?? results[0];
      if (r) {
        push("ghz SendMessage", [
          { name: `req/s at -c ${r.concurrency}`, target: "(reported)", measured: `${r.okRps} req/s`, pass: null },
          { name: "p50 / p95 / p99", target: "(reported)", measured: `${r.latencyMs.p50} / ${r.latencyMs.p95} / ${r.latencyMs.p99} ms`, pass: null },
          { name: "errors", target: "0", measured: String(r.errors), pass: r.errors === 0 },
        ], report.html);
      }
    } else {
      const scenario = wsScenario(name, short);
      const r = await runWsScenario(scenario);
      details[name] = { ...r, processes: r.processes.slice(0, 6) };
      push(scenario.title, [
        ...scenario.targets(r),
        { name: "summary", target: "", measured: describe(r), pass: null },
        { name: "busiest processes (mean CPU during send)", target: "", measured: r.processes.slice(0, 4).map((p) => `${p.label} ${p.cpuMeanPct}%`).join(", "), pass: null },
      ], r.report?.html ?? "");
    }
  } catch (error) {
    failed = true;
    console.error(`[bench] ${name} failed:`, error);
    rows.push({ scenario: name, target: "run", wanted: "completes", measured: String(error).slice(0, 200), result: "FAIL", report: "" });
  }
}
await runExitHooks();

console.log(`\nbench (${short ? "SHORT" : "full"}) finished in ${Math.round((Date.now() - started) / 1000)} s${interrupted.signal.aborted ? " — INTERRUPTED, partial" : ""}`);
console.table(rows.filter((r) => r.target !== "summary" && !r.target.startsWith("busiest")).map(({ report: _r, ...x }) => x));
for (const r of rows.filter((x) => x.target === "summary" || x.target.startsWith("busiest"))) console.log(`${r.scenario}\n  ${r.target}: ${r.measured}`);
const report = writeReport({
  name: "bench", title: `Benchmark set (${short ? "SHORT" : "full"})${interrupted.signal.aborted ? " — interrupted" : ""}`,
  summary: { seconds: Math.round((Date.now() - started) / 1000), scenarios: only.join(","), reports: [...new Set(rows.map((r) => r.report).filter(Boolean))] },
  targets: rows.map((r) => ({ name: `${r.scenario}: ${r.target}`, target: r.wanted, measured: r.measured, pass: r.result === "PASS" ? true : r.result === "MISS" || r.result === "FAIL" ? false : null })),
  charts: [],
  data: { short, rows, details },
});
console.log(`REPORT ${report.json}\n${report.html}`);
process.exit(failed ? 1 : interrupted.signal.aborted ? 130 : 0);
