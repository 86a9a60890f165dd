/**
 * One load-generator worker process (forked by load/ws-load.ts; at most ~10,000 sockets each, as
 * one process may hold ~20,000 files). It opens its WebSocket clients, joins each client's
 * conversation, then on command sends `send` frames at a given rate from random clients, and checks
 * every `message:new` it receives:
 *
 * - latency: now − the send time carried in the body (`L<epoch µs>`), into an HDR histogram
 *   (µs); the `ack` of a send gives the durable-send latency the same way;
 * - order: per client, seqs must arrive as joinedSeq+1, +2, …; a seq above the next expected one
 *   opens holes (counted out of order), a seq below it fills a hole (out of order) or is a duplicate;
 * - loss: at the end the parent passes each conversation's committed last seq from PostgreSQL;
 *   lost = unfilled holes + seqs never reached.
 *
 * Optionally each client beats presence (PresenceService.Heartbeat, device id per client) every
 * `heartbeatMs`, spread evenly. Every second it reports counter deltas and delta histograms
 * (compressed base64) to the parent over IPC. Imports only internal/gen.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import hdr from "hdr-histogram-js";
import { WebSocket } from "ws";
import { PresenceService } from "../internal/gen/chat/v1/presence_pb.js";

/** `fallbackGatewayUrl`: when the socket drops, reconnect there and resume with the last seq held. */
export type Assignment = { token: string; conversationId: string | null; gatewayUrl: string; deviceId: string; fallbackGatewayUrl?: string };

export type ToWorker =
  | { type: "init"; workerId: number; assignments: Assignment[]; connectConcurrency: number; presenceUrl: string | null; heartbeatMs: number }
  | { type: "start"; ratePerSecond: number }
  | { type: "stop" }
  | { type: "finish"; lastSeqs: Record<string, number> }
  | { type: "exit" };

export type Counters = {
  sent: number; acked: number; sendErrors: number; delivered: number; duplicated: number; outOfOrder: number;
  closes: number; heartbeats: number; heartbeatErrors: number;
  /** Clients that reconnected to their fallback gateway and resumed. */
  reconnected: number;
};

export type FromWorker =
  | { type: "progress"; connected: number; failed: number }
  | { type: "connected"; connected: number; failed: number; firstError: string | null; connectSeconds: number }
  | { type: "tick"; counters: Counters; open: number; latency: string; ackLatency: string; heartbeatLatency: string }
  | { type: "final"; expected: number; received: number; lost: number; errorCodes: Record<string, number>; closeCodes: Record<string, number> };

export const newHistogram = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3, useWebAssembly: false, bitBucketSize: 32 });

const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

type Client = {
  ws: WebSocket;
  conversationId: string | null;
  token: string;
  deviceId: string;
  open: boolean;
  joined: boolean;
  joinedSeq: number;
  /** Next seq expected. */
  next: number;
  holes: Set<number> | null;
  fallbackGatewayUrl: string | null;
  received: number;
};

const send = (m: FromWorker) => process.send!(m);

if (process.send) {
  const clients: Client[] = [];
  const counters: Counters = { sent: 0, acked: 0, sendErrors: 0, delivered: 0, duplicated: 0, outOfOrder: 0, closes: 0, heartbeats: 0, heartbeatErrors: 0, reconnected: 0 };
  const latency = newHistogram();
  const ackLatency = newHistogram();
  const heartbeatLatency = newHistogram();
  const pending = new Map<string, number>();
  const errorCodes: Record<string, number> = {};
  const closeCodes: Record<string, number> = {};
  let workerId = 0;
  let pacer: NodeJS.Timeout | null = null;
  let heartbeater: NodeJS.Timeout | null = null;
  let finishing = false;
  let refSeq = 0;

  const onFrame = (c: Client, text: string) => {
    const f = JSON.parse(text) as { type: string; conversationId?: string; seq?: string; lastSeq?: string; ref?: string; code?: string; message?: { body?: string; seq?: string } };
    switch (f.type) {
      case "message:new":
      case "conversation:updated": {
        if (f.conversationId !== c.conversationId || !c.joined) return;
        const seq = Number(f.seq);
        if (seq === c.next) {
          c.next++;
          c.received++;
        } else if (seq > c.next) {
          c.holes ??= new Set();
          for (let s = c.next; s < seq; s++) c.holes.add(s);
          c.next = seq + 1;
          c.received++;
          counters.outOfOrder++;
        } else if (c.holes?.delete(seq)) {
          c.received++;
          counters.outOfOrder++;
        } else {
          counters.duplicated++;
          return;
        }
        counters.delivered++;
        const body = f.message?.body;
        if (body !== undefined && body.startsWith("L")) latency.recordValue(Math.max(1, nowUs() - Number(body.slice(1, body.indexOf(":")))));
        return;
      }
      case "ack": {
        const sentUs = f.ref === undefined ? undefined : pending.get(f.ref);
        if (sentUs === undefined) return;
        pending.delete(f.ref!);
        counters.acked++;
        ackLatency.recordValue(Math.max(1, nowUs() - sentUs));
        return;
      }
      case "error": {
        errorCodes[f.code ?? "unknown"] = (errorCodes[f.code ?? "unknown"] ?? 0) + 1;
        if (f.ref !== undefined && pending.delete(f.ref)) counters.sendErrors++;
        return;
      }
      default:
    }
  };

  const connect = (c: Client, gatewayUrl: string) => new Promise<void>((resolve, reject) => {
    const ws = new WebSocket(`${gatewayUrl.replace(/^http/, "ws")}/ws`, ["chat.v1.json", `bearer.${c.token}`], { perMessageDeflate: false, handshakeTimeout: 60_000 });
    c.ws = ws;
    const fail = (e: Error) => reject(e);
    ws.once("error", fail);
    ws.once("unexpected-response", (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
    ws.once("open", () => {
      ws.off("error", fail);
      ws.on("error", () => {});
      c.open = true;
      ws.once("close", (code) => {
        c.open = false;
        if (!finishing) {
          counters.closes++;
          closeCodes[code] = (closeCodes[code] ?? 0) + 1;
          if (c.fallbackGatewayUrl !== null && c.joined) void resume(c, c.fallbackGatewayUrl);
        }
      });
      if (c.conversationId === null) return resolve();
      const ref = "join";
      ws.on("message", function joinListener(data) {
        const text = String(data);
        if (!text.startsWith('{"type":"joined"')) {
          if (text.startsWith('{"type":"error"')) { ws.off("message", joinListener); reject(new Error(`join refused: ${text}`)); }
          return;
        }
        const f = JSON.parse(text) as { lastSeq: string };
        c.joinedSeq = Number(f.lastSeq);
        c.next = c.joinedSeq + 1;
        c.joined = true;
        ws.off("message", joinListener);
        ws.on("message", (d) => onFrame(c, String(d)));
        resolve();
      });
      ws.send(JSON.stringify({ type: "join", conversationId: c.conversationId, ref }));
    });
  });

  /**
   * Reconnects a dropped client to `gatewayUrl` after a random 0-1 s jitter (a storm, not a
   * stampede) and joins with the last seq it holds: the gateway replays what was missed, and every
   * frame, replayed or live, goes through the same order/duplicate accounting. Retries with backoff.
   */
  const resume = async (c: Client, gatewayUrl: string): Promise<void> => {
    for (let attempt = 0; attempt < 20 && !finishing; attempt++) {
      await new Promise((r) => setTimeout(r, Math.random() * 1000 * Math.min(4, attempt + 1)));
      try {
        await new Promise<void>((resolve, reject) => {
          const ws = new WebSocket(`${gatewayUrl.replace(/^http/, "ws")}/ws`, ["chat.v1.json", `bearer.${c.token}`], { perMessageDeflate: false, handshakeTimeout: 30_000 });
          ws.once("error", reject);
          ws.once("unexpected-response", (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
          ws.once("open", () => {
            ws.on("error", () => {});
            c.ws = ws;
            c.open = true;
            c.fallbackGatewayUrl = null; // one hop: the fallback is the last gateway standing
            ws.once("close", (code) => {
              c.open = false;
              if (!finishing) {
                counters.closes++;
                closeCodes[code] = (closeCodes[code] ?? 0) + 1;
              }
            });
            ws.on("message", (d) => {
              const text = String(d);
              if (text.startsWith('{"type":"joined"')) return resolve();
              if (text.startsWith('{"type":"error"') && text.includes('"ref":"rejoin"')) return reject(new Error(text));
              onFrame(c, text);
            });
            ws.send(JSON.stringify({ type: "join", conversationId: c.conversationId, lastSeq: String(c.next - 1), ref: "rejoin" }));
          });
        });
        counters.reconnected++;
        return;
      } catch {
        // try again
      }
    }
  };

  const tick = setInterval(() => {
    const snapshot = { ...counters };
    for (const k of Object.keys(counters) as (keyof Counters)[]) counters[k] = 0;
    const encode = (h: ReturnType<typeof newHistogram>) => {
      const s = hdr.encodeIntoCompressedBase64(h);
      h.reset();
      return s;
    };
    send({ type: "tick", counters: snapshot, open: clients.reduce((n, c) => n + (c.open ? 1 : 0), 0), latency: encode(latency), ackLatency: encode(ackLatency), heartbeatLatency: encode(heartbeatLatency) });
  }, 1_000);

  const startHeartbeats = (presenceUrl: string, intervalMs: number) => {
    const presence = createClient(PresenceService, createConnectTransport({ baseUrl: presenceUrl, httpVersion: "1.1", useBinaryFormat: true }));
    const started = Date.now();
    // Client i beats at started + (i / n) * intervalMs, then every intervalMs.
    let beats = 0;
    let inFlight = 0;
    heartbeater = setInterval(() => {
      const due = Math.floor(((Date.now() - started) / intervalMs) * clients.length);
      while (beats < due && inFlight < 200) {
        const c = clients[beats++ % clients.length]!;
        if (!c.open) continue;
        inFlight++;
        const t = nowUs();
        presence.heartbeat({ deviceId: c.deviceId }, { headers: { authorization: `Bearer ${c.token}` }, timeoutMs: 10_000 }).then(
          () => { counters.heartbeats++; heartbeatLatency.recordValue(Math.max(1, nowUs() - t)); },
          () => { counters.heartbeatErrors++; },
        ).finally(() => { inFlight--; });
      }
    }, 50);
  };

  process.on("message", async (m: ToWorker) => {
    switch (m.type) {
      case "init": {
        workerId = m.workerId;
        const started = Date.now();
        let connected = 0;
        let failed = 0;
        let firstError: string | null = null;
        let next = 0;
        const progress = setInterval(() => send({ type: "progress", connected, failed }), 1_000);
        await Promise.all(Array.from({ length: m.connectConcurrency }, async () => {
          while (next < m.assignments.length) {
            const a = m.assignments[next++]!;
            const c: Client = { ws: null as unknown as WebSocket, conversationId: a.conversationId, token: a.token, deviceId: a.deviceId, open: false, joined: false, joinedSeq: 0, next: 0, holes: null, received: 0, fallbackGatewayUrl: a.fallbackGatewayUrl ?? null };
            try {
              await connect(c, a.gatewayUrl);
              clients.push(c);
              connected++;
            } catch (error) {
              failed++;
              firstError ??= String(error);
              c.ws?.terminate();
            }
          }
        }));
        clearInterval(progress);
        if (m.presenceUrl !== null && m.heartbeatMs > 0) startHeartbeats(m.presenceUrl, m.heartbeatMs);
        send({ type: "connected", connected, failed, firstError, connectSeconds: (Date.now() - started) / 1000 });
        return;
      }
      case "start": {
        if (pacer) clearInterval(pacer);
        const senders = clients.filter((c) => c.joined);
        if (senders.length === 0 || m.ratePerSecond <= 0) return;
        const started = performance.now();
        let sentHere = 0;
        pacer = setInterval(() => {
          const due = Math.floor(((performance.now() - started) / 1000) * m.ratePerSecond);
          while (sentHere < due) {
            const c = senders[Math.floor(Math.random() * senders.length)]!;
            sentHere++;
            if (!c.open) continue;
            const ref = `${workerId}-${refSeq++}`;
            const t = nowUs();
            pending.set(ref, t);
            c.ws.send(`{"type":"send","conversationId":"${c.conversationId}","body":"L${t}:w${workerId}","idempotencyKey":"${ref}","ref":"${ref}"}`);
            counters.sent++;
          }
        }, 5);
        return;
      }
      case "stop": {
        if (pacer) clearInterval(pacer);
        pacer = null;
        return;
      }
      case "finish": {
        let expected = 0;
        let received = 0;
        let lost = 0;
        for (const c of clients) {
          if (!c.joined || c.conversationId === null) continue;
          const last = m.lastSeqs[c.conversationId] ?? c.joinedSeq;
          expected += Math.max(0, last - c.joinedSeq);
          received += c.received;
          lost += (c.holes?.size ?? 0) + Math.max(0, last - (c.next - 1));
        }
        send({ type: "final", expected, received, lost, errorCodes, closeCodes });
        return;
      }
      case "exit": {
        finishing = true;
        clearInterval(tick);
        if (heartbeater) clearInterval(heartbeater);
        for (const c of clients) c.ws.terminate();
        setTimeout(() => process.exit(0), 100);
        return;
      }
    }
  });
  process.on("disconnect", () => process.exit(0));
}
