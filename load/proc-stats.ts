/**
 * CPU and memory of the processes of a run, sampled from /proc: `/proc/<pid>/stat` (utime+stime,
 * in clock ticks of 1/100 s) and `/proc/<pid>/status` (VmRSS). PostgreSQL and Redis are sampled
 * too, as one entry each (all `postgres` processes summed), because on one machine they compete
 * for the same cores and are often the bottleneck.
 *
 * CPU is reported in percent of one core (200 % = both cores of this machine).
 */
import { readdirSync, readFileSync } from "node:fs";

const TICKS_PER_SECOND = 100;

export type ProcSample = { tMs: number; cpuPct: number; rssBytes: number };
export type ProcSeries = { label: string; pids: number[]; samples: ProcSample[] };

function readTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
  } catch {
    return null;
  }
}

function readRss(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function pidsByName(names: string[]): Map<string, number[]> {
  const out = new Map<string, number[]>(names.map((n) => [n, []]));
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const comm = readFileSync(`/proc/${entry}/comm`, "utf8").trim();
      out.get(comm)?.push(Number(entry));
    } catch {
      // gone already
    }
  }
  return out;
}

export type ProcSampler = {
  /** Adds a process (or a group of processes under one label) to sample from now on. */
  track(label: string, pid: number): void;
  series(): ProcSeries[];
  /** Latest sample per label. */
  latest(): Map<string, ProcSample>;
  stop(): void;
};

/** Samples every `intervalMs` (default 1 s); `t0` is the run's time origin (ms, Date.now()). */
export function startProcSampler(t0: number, intervalMs = 1_000, system = ["postgres", "redis-server"]): ProcSampler {
  const groups = new Map<string, { series: ProcSeries; last: Map<number, number> }>();
  const track = (label: string, pid: number) => {
    let g = groups.get(label);
    if (!g) groups.set(label, (g = { series: { label, pids: [], samples: [] }, last: new Map() }));
    if (!g.series.pids.includes(pid)) {
      g.series.pids.push(pid);
      const ticks = readTicks(pid);
      if (ticks !== null) g.last.set(pid, ticks);
    }
  };
  let lastAt = Date.now();
  let systemRefresh = 0;
  const sample = () => {
    if (systemRefresh-- <= 0) {
      // New PostgreSQL backends appear as connections open; rescan now and then.
      systemRefresh = 5;
      for (const [name, pids] of pidsByName(system)) for (const pid of pids) track(name, pid);
    }
    const now = Date.now();
    const elapsedS = (now - lastAt) / 1000;
    lastAt = now;
    for (const g of groups.values()) {
      let ticks = 0;
      let rss = 0;
      for (const pid of g.series.pids) {
        const t = readTicks(pid);
        if (t === null) continue;
        ticks += t - (g.last.get(pid) ?? t);
        g.last.set(pid, t);
        rss += readRss(pid);
      }
      g.series.samples.push({ tMs: now - t0, cpuPct: elapsedS > 0 ? Math.round((ticks / TICKS_PER_SECOND / elapsedS) * 1000) / 10 : 0, rssBytes: rss });
    }
  };
  const timer = setInterval(sample, intervalMs);
  timer.unref();
  return {
    track,
    series: () => [...groups.values()].map((g) => g.series),
    latest: () => new Map([...groups.values()].flatMap((g) => (g.series.samples.length ? [[g.series.label, g.series.samples.at(-1)!] as const] : []))),
    stop: () => clearInterval(timer),
  };
}

/** Mean and max CPU and the peak RSS per label over samples with tMs in [fromMs, toMs]. */
export function summarizeProcs(series: ProcSeries[], fromMs = 0, toMs = Infinity) {
  return series.map((s) => {
    const window = s.samples.filter((x) => x.tMs >= fromMs && x.tMs <= toMs);
    const cpu = window.map((x) => x.cpuPct);
    return {
      label: s.label,
      cpuMeanPct: cpu.length ? Math.round(cpu.reduce((a, b) => a + b, 0) / cpu.length) : 0,
      cpuMaxPct: cpu.length ? Math.round(Math.max(...cpu)) : 0,
      rssPeakMiB: Math.round(Math.max(0, ...window.map((x) => x.rssBytes)) / 1048576),
      rssLastMiB: Math.round((window.at(-1)?.rssBytes ?? 0) / 1048576),
    };
  }).sort((a, b) => b.cpuMeanPct - a.cpuMeanPct);
}
