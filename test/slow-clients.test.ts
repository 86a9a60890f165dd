import assert from "node:assert/strict";
import * as net from "node:net";
import { after, before, test } from "node:test";
import { startChatNode, type ChatNode } from "../internal/app/index.js";
import { createLogger } from "../internal/telemetry/index.js";
import { createTestEnv, type TestEnv } from "./support/index.js";

let env: TestEnv;
let node: ChatNode;

before(async () => {
  env = await createTestEnv({ CHAT_HTTP_HEADERS_TIMEOUT_MS: "1000" });
  node = await startChatNode(env.config, createLogger("test", "silent"));
});
after(async () => {
  await node?.close();
  await env?.close();
});

/** Opens a socket, runs `drip` on it, and resolves with how long until the server closed it. */
function closedAfter(drip: (socket: net.Socket) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect(node.port, "127.0.0.1", () => drip(socket));
    socket.on("error", () => {});
    socket.resume();
    socket.once("close", () => resolve(Date.now() - started));
    setTimeout(() => reject(new Error("server never closed the slow client")), 10_000).unref();
  });
}

test("slow-header and silent clients are cut off after CHAT_HTTP_HEADERS_TIMEOUT_MS while others are served", async () => {
  const slow = closedAfter((socket) => {
    socket.write("GET /health HTTP/1.1\r\nHost: x\r\n");
    const timer = setInterval(() => socket.writable && socket.write("X-Slow: y\r\n"), 200);
    socket.once("close", () => clearInterval(timer));
  });
  const silent = closedAfter(() => {});
  const served = await fetch(`http://127.0.0.1:${node.port}/health`);
  assert.equal(served.status, 200);
  const [slowMs, silentMs] = await Promise.all([slow, silent]);
  assert.ok(slowMs >= 900 && slowMs < 4_000, `slow-header client closed after ${slowMs} ms`);
  assert.ok(silentMs >= 900 && silentMs < 4_000, `silent client closed after ${silentMs} ms`);
  assert.equal((await fetch(`http://127.0.0.1:${node.port}/health`)).status, 200, "still serving");
});
