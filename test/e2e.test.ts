/**
 * End to end, in a real browser: a local cluster of real processes (chat-node, gateway, presence
 * when built, cmd/web serving a fresh `vite build web`), each on a free port and sharing an
 * isolated database and Redis prefix, driven by Debian Chromium through playwright-core.
 * Screenshots of the main screens go to test-results/screenshots/ (git-ignored).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { apiClients, createTestEnv, eventually, freePort, serviceEnv, startService, type ServiceProcess, type TestEnv } from "./support/index.js";

const root = resolve(import.meta.dirname, "..");
const shots = resolve(root, "test-results/screenshots");
const UI_TIMEOUT_MS = 15_000;
const PASSWORD = "correct horse battery";

describe("web app end to end", { timeout: 170_000 }, () => {
  let env: TestEnv;
  let browser: Browser;
  const children = new Map<string, ServiceProcess>();
  const contexts: BrowserContext[] = [];
  const ports = { api: 0, grpc: 0, gateway: 0, presence: 0, web: 0 };
  let base = "";
  let childEnv: Record<string, string> = {};
  const suffix = randomBytes(3).toString("hex");
  const users = { alice: `alice_${suffix}`, bob: `bob_${suffix}`, carol: `carol_${suffix}` };
  const pages: Record<"alice" | "bob" | "carol", Page> = {} as never;
  let directId = "";
  let groupId = "";
  const timings: Record<string, number> = {};

  /** Starts cmd/<name>/main.ts; it counts as up once its port accepts connections. */
  const start = async (name: string, port: number) => {
    children.set(name, await startService(name, { name: `e2e-${name}`, port, env: childEnv, ready: "tcp", readyTimeoutMs: 20_000 }));
  };

  /** SIGTERM, then SIGKILL after 8 s. */
  const stop = async (name: string) => {
    await children.get(name)?.stop(8_000);
    children.delete(name);
  };

  const newPage = async (viewport = { width: 1200, height: 760 }) => {
    const context = await browser.newContext({ viewport, baseURL: base });
    contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(UI_TIMEOUT_MS);
    return page;
  };

  const shot = (page: Page, name: string) => page.screenshot({ path: resolve(shots, `${name}.png`) });

  const register = async (page: Page, username: string, displayName: string) => {
    await page.goto("/");
    await page.getByRole("tab", { name: "Register" }).click();
    await page.getByLabel("Username").fill(username);
    await page.getByLabel(/Display name/).fill(displayName);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Create account" }).click();
    await page.getByRole("button", { name: "New chat" }).waitFor();
  };

  const bodies = (page: Page) => page.locator('[data-testid="message"] .body').allTextContents();
  const seqs = async (page: Page) =>
    (await page.locator('[data-testid="message"], .system').evaluateAll((els) => els.map((e) => Number(e.getAttribute("data-seq")))));
  const send = async (page: Page, text: string) => {
    await page.getByLabel("Message", { exact: true }).fill(text);
    await page.getByLabel("Message", { exact: true }).press("Enter");
  };
  const conversationLink = (page: Page, id: string) => page.locator(`a.conversation[data-conversation-id="${id}"]`);

  before(async () => {
    mkdirSync(shots, { recursive: true });
    env = await createTestEnv();
    for (const key of Object.keys(ports) as (keyof typeof ports)[]) ports[key] = await freePort();
    base = `http://127.0.0.1:${ports.web}`;
    childEnv = serviceEnv(env, {
      CHAT_NODE_PORT: String(ports.api),
      CHAT_NODE_GRPC_PORT: String(ports.grpc),
      CHAT_GATEWAY_PORT: String(ports.gateway),
      CHAT_GATEWAY_API_URL: `http://127.0.0.1:${ports.api}`,
      CHAT_PRESENCE_PORT: String(ports.presence),
      CHAT_WEB_PORT: String(ports.web),
      CHAT_WEB_API_URL: `http://127.0.0.1:${ports.api}`,
      CHAT_WEB_GATEWAY_URL: `http://127.0.0.1:${ports.gateway}`,
      CHAT_WEB_PRESENCE_URL: `http://127.0.0.1:${ports.presence}`,
      CHAT_CORS_ORIGINS: `${base},http://localhost:${ports.web}`,
    });
    const build = spawnSync(process.execPath, [resolve(root, "node_modules/vite/bin/vite.js"), "build", "web", "--logLevel", "warn"], { cwd: root, encoding: "utf8" });
    assert.equal(build.status, 0, `vite build web failed:\n${build.stdout}\n${build.stderr}`);
    await Promise.all([
      start("chat-node", ports.api),
      start("gateway", ports.gateway),
      start("presence", ports.presence),
      start("web", ports.web),
    ]);
    browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"],
    });
  });

  after(async () => {
    for (const context of contexts) await context.close().catch(() => {});
    await browser?.close().catch(() => {});
    await Promise.all([...children.keys()].map((name) => stop(name)));
    await env?.close();
    if (Object.keys(timings).length > 0) console.log(`# e2e timings ${JSON.stringify(timings)}`);
  });

  test("web server: caching headers, SPA fallback and the API proxy", async () => {
    const index = await fetch(`${base}/c/some-conversation`);
    assert.equal(index.status, 200);
    assert.equal(index.headers.get("cache-control"), "no-cache");
    assert.match(index.headers.get("content-security-policy") ?? "", /default-src 'self'/);
    const asset = /\/assets\/[^"]+\.js/.exec(await index.text())?.[0];
    assert.ok(asset, "index.html references a hashed script");
    const js = await fetch(`${base}${asset}`);
    assert.equal(js.headers.get("cache-control"), "public, max-age=31536000, immutable");
    assert.equal((await fetch(`${base}/assets/missing-abc.js`)).status, 404);
    const rpc = await fetch(`${base}/chat.v1.ConversationService/ListConversations`, {
      method: "POST", headers: { "content-type": "application/json", origin: base }, body: "{}",
    });
    assert.equal(rpc.status, 401, "proxied to the chat-node, which wants a token");
    assert.equal((await fetch(`${base}/ready`)).status, 200);
    assert.match(await (await fetch(`${base}/metrics`)).text(), /process_resident_memory_bytes/);
  });

  test("two users register, start a direct chat and talk in real time; the unread badge appears and clears", async () => {
    pages.alice = await newPage();
    pages.bob = await newPage();
    await pages.alice.goto("/");
    await pages.alice.getByRole("button", { name: "Log in" }).waitFor();
    await shot(pages.alice, "01-login");
    await Promise.all([register(pages.alice, users.alice, "Alice Liddell"), register(pages.bob, users.bob, "Bob Stone")]);

    const alice = pages.alice;
    await alice.getByRole("button", { name: "New chat" }).click();
    await shot(alice, "02-new-chat-dialog");
    await alice.getByLabel("Username").fill(users.bob);
    await alice.getByRole("button", { name: "Start chat" }).click();
    await alice.waitForURL(/\/c\/[0-9a-f-]+$/);
    directId = alice.url().split("/c/")[1]!;
    await send(alice, "Hi Bob! 👋");
    await alice.locator('[data-testid="message"]', { hasText: "Hi Bob!" }).waitFor();
    assert.equal(await alice.locator('[data-testid="pending-message"]').count(), 0, "the send was confirmed");

    // Bob did not have this conversation yet: it shows up with an unread badge.
    const bob = pages.bob;
    const link = conversationLink(bob, directId);
    await link.locator('[data-testid="unread-badge"]', { hasText: "1" }).waitFor();
    assert.match(await link.innerText(), /Hi Bob!/);
    await shot(bob, "03-list-unread");
    await link.click();
    await bob.locator('[data-testid="message"]', { hasText: "Hi Bob!" }).waitFor();
    await link.locator('[data-testid="unread-badge"]').waitFor({ state: "detached" });

    const sentAt = Date.now();
    await send(bob, "Hey Alice, good to see you here.");
    await alice.locator('[data-testid="message"]', { hasText: "good to see you" }).waitFor();
    timings.deliveryMs = Date.now() - sentAt;
    await send(alice, "Likewise!");
    await bob.locator('[data-testid="message"]', { hasText: "Likewise!" }).waitFor();
    await alice.getByTestId("seen").waitFor();
    await conversationLink(alice, directId).locator(".presence-dot.online").waitFor();
    await shot(alice, "04-direct-chat");
    assert.deepEqual(await bodies(bob), ["Hi Bob! 👋", "Hey Alice, good to see you here.", "Likewise!"]);
  });

  test("a third user in a group sees typing, and read receipts reach the sender", async () => {
    pages.carol = await newPage();
    await register(pages.carol, users.carol, "Carol Jones");
    const alice = pages.alice;
    await alice.getByRole("button", { name: "New chat" }).click();
    await alice.getByRole("tab", { name: "Group" }).click();
    await alice.getByLabel("Group name").fill("Weekend plans");
    await alice.getByLabel(/Members/).fill(`${users.bob}, ${users.carol}`);
    await alice.getByRole("button", { name: "Create group" }).click();
    await alice.waitForURL((url) => url.pathname.startsWith("/c/") && !url.pathname.endsWith(directId));
    groupId = alice.url().split("/c/")[1]!;
    assert.notEqual(groupId, directId);
    await send(alice, "Who is in for a hike on Saturday?");

    const carol = pages.carol;
    await conversationLink(carol, groupId).click();
    await carol.locator('[data-testid="message"]', { hasText: "hike on Saturday" }).waitFor();
    await alice.getByTestId("seen").filter({ hasText: "Carol Jones" }).waitFor();

    await carol.getByLabel("Message", { exact: true }).pressSequentially("I am", { delay: 30 });
    await alice.getByTestId("typing").filter({ hasText: "Carol Jones is typing" }).waitFor();
    await shot(alice, "05-group-typing-seen");
    await send(carol, "I am in!");
    await alice.locator('[data-testid="message"]', { hasText: "I am in!" }).waitFor();
    await alice.getByTestId("typing").filter({ hasText: /^$/ }).waitFor();

    // Group settings: rename (the event reaches every member), then view the member list.
    await alice.getByRole("button", { name: "Group settings" }).click();
    await alice.getByLabel("Group name").fill("Saturday hike");
    await alice.getByRole("button", { name: "Rename" }).click();
    await alice.locator(".system", { hasText: "renamed the group" }).waitFor();
    await shot(alice, "06-group-settings");
    await alice.keyboard.press("Escape");
    await carol.getByRole("heading", { name: "Saturday hike" }).waitFor();
  });

  test("a failed send is retried with the same idempotency key and appears exactly once", async () => {
    const bob = pages.bob;
    await bob.context().setOffline(true);
    await send(bob, "Sent while offline");
    await bob.getByRole("button", { name: "Retry" }).waitFor();
    await shot(bob, "07-send-failed");
    await bob.context().setOffline(false);
    await bob.getByRole("button", { name: "Retry" }).click();
    await pages.alice.getByRole("link", { name: /Bob Stone/ }).click();
    await pages.alice.locator('[data-testid="message"]', { hasText: "Sent while offline" }).waitFor();
    await bob.locator('[data-testid="pending-message"]').waitFor({ state: "detached" });
    await eventually(async () => (await bodies(pages.alice)).filter((b) => b === "Sent while offline").length === 1);
    assert.equal((await bodies(bob)).filter((b) => b === "Sent while offline").length, 1);
  });

  test("the gateway restarts mid-conversation and no message is lost or duplicated", async () => {
    const alice = pages.alice;
    const bob = pages.bob;
    const bobApi = apiClients(`http://127.0.0.1:${ports.api}`, (await apiClients(`http://127.0.0.1:${ports.api}`).auth.login({ username: users.bob, password: PASSWORD })).token);
    await send(bob, "before restart");
    await alice.locator('[data-testid="message"]', { hasText: "before restart" }).waitFor();

    await stop("gateway");
    await alice.getByRole("status").filter({ hasText: "Reconnecting" }).waitFor();
    const during = ["while down 1", "while down 2", "while down 3"];
    for (const [i, body] of during.entries()) await bobApi.messages.sendMessage({ conversationId: directId, body, idempotencyKey: `e2e-down-${i}` });
    await start("gateway", ports.gateway);
    await alice.getByRole("status").filter({ hasText: "Reconnecting" }).waitFor({ state: "detached" });
    await eventually(async () => (await bobApi.messages.listMessages({ conversationId: directId, limit: 1 })).messages.length > 0);
    await send(bob, "after restart");

    const expected = ["Hi Bob! 👋", "Hey Alice, good to see you here.", "Likewise!", "Sent while offline", "before restart", ...during, "after restart"];
    for (const page of [alice, bob]) {
      await eventually(async () => JSON.stringify(await bodies(page)) === JSON.stringify(expected), { timeoutMs: UI_TIMEOUT_MS })
        .catch(async () => assert.deepEqual(await bodies(page), expected));
      const s = await seqs(page);
      assert.deepEqual(s, [...s].sort((a, b) => a - b), "in seq order");
      assert.equal(new Set(s).size, s.length, "no seq shown twice");
    }
    await shot(alice, "08-after-gateway-restart");
  });

  test("a cold load opens a conversation by URL; a non-member gets no access", async () => {
    // Cold: a new browser context (empty cache) with Alice's saved session, straight to the URL.
    const login = await apiClients(`http://127.0.0.1:${ports.api}`).auth.login({ username: users.alice, password: PASSWORD });
    const session = { token: login.token, userId: login.user!.id, username: users.alice, displayName: "Alice Liddell", expiresAtMs: Number(login.expiresAtMs) };
    const cold = await newPage({ width: 390, height: 780 });
    await cold.addInitScript((s) => (globalThis as any).localStorage.setItem("chat.session", s), JSON.stringify(session));
    const t0 = Date.now();
    await cold.goto(`/c/${directId}`);
    await cold.locator('[data-testid="message"]').first().waitFor();
    timings.coldLoadToFirstMessageMs = Date.now() - t0;
    timings.coldLoadNavigationToFirstMessageMs = await cold.evaluate(() => Math.round(performance.now()));
    await shot(cold, "09-mobile-conversation");
    await cold.getByRole("link", { name: "Back to conversations" }).click();
    await conversationLink(cold, groupId).waitFor();
    await shot(cold, "10-mobile-list");

    const carol = pages.carol;
    await carol.goto(`/c/${directId}`);
    await carol.getByRole("alert").filter({ hasText: "not a member" }).waitFor();
    assert.equal(await carol.locator('[data-testid="message"]').count(), 0);
    await shot(carol, "11-not-a-member");
  });

  test("log out returns to the login screen and forgets the session", async () => {
    const alice = pages.alice;
    await alice.getByRole("button", { name: "Log out" }).click();
    await alice.getByRole("button", { name: "Log in" }).waitFor();
    await alice.reload();
    await alice.getByRole("button", { name: "Log in" }).waitFor();
    assert.equal(await alice.evaluate(() => (globalThis as any).localStorage.getItem("chat.session")), null);
  });
});
