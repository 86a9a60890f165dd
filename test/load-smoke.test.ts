/**
 * Smoke test of the WebSocket load generator (load/ws-load.ts, scenario "smoke"): a few hundred
 * clients on their own small cluster (1 chat-node, 2 gateways, fresh database and Redis prefix)
 * send for a few seconds; every delivery must arrive exactly once and in order, and the run must
 * leave a valid JSON + HTML report. Runs the generator as a child process, as `npm run load:ws`
 * does, so its signal handling and cleanup are exercised too. Bounded well under 90 s.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";

const ROOT = new URL("../", import.meta.url).pathname;

test("ws load generator: zero lost, duplicated or out-of-order deliveries, and a valid report", { timeout: 90_000 }, async () => {
  const child = spawn(process.execPath, ["--import", "tsx", "load/ws-load.ts", "--scenario=smoke", "--clients=300", "--rate=100", "--seconds=4"], {
    cwd: ROOT, stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => { stdout += d; });
  child.stderr.on("data", (d) => { stderr += d; });
  const killer = setTimeout(() => child.kill("SIGKILL"), 85_000);
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  clearTimeout(killer);
  assert.equal(code, 0, `load generator failed (exit ${code}):\n${stderr.slice(-3000)}`);

  const reportPath = /^REPORT (.+\.json)$/m.exec(stdout)?.[1];
  assert.ok(reportPath && existsSync(reportPath), `no report path in output:\n${stdout.slice(-2000)}`);
  const report = JSON.parse(readFileSync(reportPath, "utf8")) as {
    result: {
      connected: number; clients: number; acked: number; sendErrors: number; partial: boolean;
      deliveries: { expected: number; received: number; lost: number; duplicated: number; outOfOrder: number };
      latencyMs: { p99: number; count: number };
    };
    timeline: unknown[];
  };
  const r = report.result;
  assert.equal(r.partial, false);
  assert.equal(r.connected, 300);
  assert.equal(r.sendErrors, 0);
  assert.ok(r.acked >= 300, `only ${r.acked} sends acknowledged`);
  assert.deepEqual(
    { lost: r.deliveries.lost, duplicated: r.deliveries.duplicated, outOfOrder: r.deliveries.outOfOrder },
    { lost: 0, duplicated: 0, outOfOrder: 0 },
  );
  assert.ok(r.deliveries.expected > 0 && r.deliveries.received === r.deliveries.expected, `received ${r.deliveries.received} of ${r.deliveries.expected}`);
  assert.equal(r.latencyMs.count, r.deliveries.received, "every delivery has a latency sample");
  assert.ok(r.latencyMs.p99 > 0);
  assert.ok(report.timeline.length > 0);

  const html = readFileSync(reportPath.replace(/\.json$/, ".html"), "utf8");
  assert.match(html, /^<!doctype html>/);
  assert.ok((html.match(/<svg /g) ?? []).length >= 4, "report has its charts");
});
