import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import fc from "fast-check";
import { bodyAad } from "../actor/index.js";
import { loadConfig, ConfigError } from "../config/index.js";
import { createMessageCodec, messageCodecFromConfig, type MessageCodec } from "./message-codec.js";
import { createOutboxBody } from "./outbox-body.js";

const k1 = randomBytes(32);
const k2 = randomBytes(32);
const keys = new Map([[1, k1], [2, k2]]);
const on = (active = 1): MessageCodec => createMessageCodec({ encryptionEnabled: true, keyring: { keys, activeVersion: active } });
const aad = bodyAad("c0a8c7e4-0000-4000-8000-000000000001", "5f1b8f39-0000-4000-8000-000000000002");

test("round trip of any text, with a fresh 96-bit IV and a 16-byte tag each time", () => {
  const codec = on();
  fc.assert(fc.property(fc.string({ unit: "grapheme", maxLength: 300 }), (text) => {
    const sealed = codec.seal(text, aad);
    assert.equal(sealed.kind, "sealed");
    if (sealed.kind !== "sealed") return;
    assert.equal(sealed.iv.length, 12);
    assert.equal(sealed.tag.length, 16);
    assert.equal(sealed.keyVersion, 1);
    assert.ok(!sealed.ciphertext.includes(Buffer.from(text)) || text.length === 0);
    assert.equal(codec.open(sealed, aad), text);
  }));
  const a = codec.seal("same", aad), b = codec.seal("same", aad);
  assert.ok(a.kind === "sealed" && b.kind === "sealed" && !a.iv.equals(b.iv));
});

test("a ciphertext moved to another row (other AAD) fails to open", () => {
  const codec = on();
  const sealed = codec.seal("secret", aad);
  assert.throws(() => codec.open(sealed, bodyAad("c0a8c7e4-0000-4000-8000-000000000001", "5f1b8f39-0000-4000-8000-000000000003")), /could not be opened/);
});

test("truncated, empty or altered tags and altered ciphertext or iv fail", () => {
  const codec = on();
  const s = codec.seal("secret message", aad);
  assert.ok(s.kind === "sealed");
  for (const tag of [s.tag.subarray(0, 12), s.tag.subarray(0, 4), Buffer.alloc(0), Buffer.concat([s.tag, Buffer.from([0])])]) {
    assert.throws(() => codec.open({ ...s, tag }, aad), /bad tag length/);
  }
  const flip = (b: Buffer, i: number) => { const c = Buffer.from(b); c[i]! ^= 1; return c; };
  assert.throws(() => codec.open({ ...s, tag: flip(s.tag, 0) }, aad), /authentication failed/);
  assert.throws(() => codec.open({ ...s, ciphertext: flip(s.ciphertext, 3) }, aad), /authentication failed/);
  assert.throws(() => codec.open({ ...s, iv: flip(s.iv, 0) }, aad), /authentication failed/);
  assert.throws(() => codec.open({ ...s, iv: s.iv.subarray(0, 8) }, aad), /bad iv length/);
  assert.throws(() => codec.open({ ...s, keyVersion: 2 }, aad), /authentication failed/);
  assert.throws(() => codec.open({ ...s, keyVersion: 9 }, aad), /key version 9 is not configured/);
});

test("errors never carry the body or key material", () => {
  const codec = on();
  const s = codec.seal("TOP-SECRET-BODY", aad);
  try {
    assert.ok(s.kind === "sealed");
    codec.open({ ...s, ciphertext: Buffer.from(s.ciphertext).fill(1) }, "other");
    assert.fail("expected failure");
  } catch (error) {
    const text = `${(error as Error).message} ${JSON.stringify(error)}`;
    assert.ok(!text.includes("TOP-SECRET") && !text.includes(k1.toString("base64")));
  }
});

test("disabled: writes plaintext, still opens sealed rows of every configured version", () => {
  const off = createMessageCodec({ encryptionEnabled: false, keyring: { keys, activeVersion: 2 } });
  assert.deepEqual(off.seal("hi", aad), { kind: "plain", text: "hi" });
  assert.equal(off.sealVersion, 0);
  assert.equal(off.open(on(1).seal("one", aad), aad), "one");
  assert.equal(off.open(on(2).seal("two", aad), aad), "two");
  assert.equal(on(2).open({ kind: "plain", text: "old" }, aad), "old");
  const none = createMessageCodec({ encryptionEnabled: false, keyring: { keys: new Map(), activeVersion: 0 } });
  assert.throws(() => none.open(on(1).seal("x", aad), aad), /not configured/);
});

test("reseal moves a body to the active key", () => {
  const s1 = on(1).seal("rotate me", aad);
  const s2 = on(2).reseal(s1, aad);
  assert.equal(s2.keyVersion, 2);
  assert.equal(on(2).open(s2, aad), "rotate me");
  assert.equal(on(2).reseal({ kind: "plain", text: "was plain" }, aad).keyVersion, 2);
});

test("outbox bodies: plaintext when off or when CHAT_KAFKA_PLAINTEXT_BODIES, sealed otherwise", () => {
  const event = { id: "5f1b8f39-0000-4000-8000-000000000002", conversationId: "c0a8c7e4-0000-4000-8000-000000000001", body: "hello" } as never;
  assert.equal(createOutboxBody(createMessageCodec({ encryptionEnabled: false, keyring: { keys, activeVersion: 1 } }), { plaintextBodies: false })(event), "hello");
  assert.equal(createOutboxBody(on(), { plaintextBodies: true })(event), "hello");
  const sealed = createOutboxBody(on(2), { plaintextBodies: false })(event) as Record<string, string | number>;
  assert.equal(sealed.keyVersion, 2);
  assert.ok(!JSON.stringify(sealed).includes("hello"));
  const back = on(2).open({ kind: "sealed", keyVersion: 2, iv: Buffer.from(sealed.iv as string, "base64"), tag: Buffer.from(sealed.tag as string, "base64"), ciphertext: Buffer.from(sealed.ciphertext as string, "base64") }, sealed.aad as string);
  assert.equal(back, "hello");
});

test("config: keyring parsing and clear errors at start, never echoing key material", () => {
  const b64 = (b: Buffer) => `base64:${b.toString("base64")}`;
  const base = { JWT_SECRET: "a-strong-test-secret-0123456789abcdef" };
  const c = loadConfig({ ...base, CHAT_ENCRYPTION_ENABLED: "true", CHAT_MESSAGE_KEY: b64(k1), CHAT_MESSAGE_KEYS: `2:${b64(k2)}` });
  assert.equal(c.messageKeyActive, 2);
  assert.ok(c.messageKeys.get(1)!.equals(k1) && c.messageKeys.get(2)!.equals(k2));
  assert.equal(messageCodecFromConfig(c).sealVersion, 2);
  assert.equal(loadConfig({ ...base, CHAT_MESSAGE_KEYS: `1:${b64(k1)},2:${b64(k2)}`, CHAT_MESSAGE_KEY_ACTIVE: "1" }).messageKeyActive, 1);
  const bad: [Record<string, string>, RegExp][] = [
    [{ CHAT_MESSAGE_KEY: b64(randomBytes(16)) }, /16 bytes; AES-256 needs exactly 32/],
    [{ CHAT_MESSAGE_KEY: b64(randomBytes(33)) }, /33 bytes/],
    [{ CHAT_MESSAGE_KEY: "base64:not*base64!" }, /canonical base64/],
    [{ CHAT_MESSAGE_KEY: k1.toString("base64") }, /must be "base64:"/],
    [{ CHAT_MESSAGE_KEYS: `x:${b64(k1)}` }, /<version 1-65535>/],
    [{ CHAT_MESSAGE_KEYS: `1:${b64(k1)}`, CHAT_MESSAGE_KEY_ACTIVE: "3" }, /CHAT_MESSAGE_KEY_ACTIVE: version 3 is not in the keyring/],
    [{ CHAT_MESSAGE_KEY: b64(k1), CHAT_MESSAGE_KEYS: `1:${b64(k2)}` }, /defined twice/],
    [{ CHAT_ENCRYPTION_ENABLED: "true" }, /CHAT_MESSAGE_KEY: required/],
  ];
  for (const [env, pattern] of bad) {
    assert.throws(() => loadConfig({ ...base, ...env }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, pattern);
      assert.ok(!error.message.includes(k1.toString("base64")) && !error.message.includes(k2.toString("base64")));
      return true;
    });
  }
});

test("config: JWT secret strength", () => {
  assert.throws(() => loadConfig({ JWT_SECRET: "short-secret" }), /at least 32 characters/);
  assert.throws(() => loadConfig({ JWT_SECRET: "a".repeat(40) }), /too little variety/);
  assert.throws(() => loadConfig({ NODE_ENV: "production" }), /example secret is refused/);
  assert.equal(loadConfig({ NODE_ENV: "development" }).nodeEnv, "development");
  assert.equal(loadConfig({ NODE_ENV: "production", JWT_SECRET: randomBytes(32).toString("base64url") }).nodeEnv, "production");
});
