import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import type { BodyCodec } from "../actor/index.js";
import { AppError } from "../errors/index.js";
import type { StoredBody } from "../storage/index.js";

const ALGORITHM = "aes-256-gcm";
/** 96-bit IVs: the size GCM is specified for (NIST SP 800-38D); random per message. */
export const IV_BYTES = 12;
/** Full 128-bit tags only: shorter tags are refused on open (GCM forgery gets easier as tags shrink). */
export const TAG_BYTES = 16;
export const KEY_BYTES = 32;

/** The message keyring: version -> 32-byte key, and the version new bodies are sealed with. */
export type Keyring = { keys: ReadonlyMap<number, Buffer>; activeVersion: number };

export type MessageCodecOptions = {
  /** Seal new bodies (AES-256-GCM with the active key); false stores plaintext. Opening works either way. */
  encryptionEnabled: boolean;
  keyring: Keyring;
};

/** A BodyCodec that can also tell which key version it seals with (0: plaintext). */
export type MessageCodec = BodyCodec & {
  readonly sealVersion: number;
  /** Re-seals a stored body with the active key (used by key rotation); throws like open(). */
  reseal(body: StoredBody, aad: string): StoredBody & { kind: "sealed" };
};

/** Thrown when a sealed body cannot be opened. The message never contains key or body material. */
const openFailed = (why: string) => new AppError("internal", `message body could not be opened: ${why}`);

/**
 * AES-256-GCM at rest. seal(): a random 96-bit IV per body, a 16-byte tag, `aad` (conversation id
 * and message id, see bodyAad) authenticated, so a ciphertext copied to another row fails to open.
 * open(): plaintext rows are returned as they are (rows of both kinds coexist, so turning
 * encryption on or off needs no migration); sealed rows need their key version in the keyring.
 * Throws AppError("internal") when a body fails authentication or its key is missing.
 */
export function createMessageCodec(options: MessageCodecOptions): MessageCodec {
  const { keys, activeVersion } = options.keyring;
  for (const [version, key] of keys) {
    if (key.length !== KEY_BYTES) throw new Error(`message key version ${version} is not ${KEY_BYTES} bytes`);
  }
  if (options.encryptionEnabled && !keys.has(activeVersion)) {
    throw new Error(`active message key version ${activeVersion} is not in the keyring`);
  }
  const activeKey = keys.get(activeVersion);

  const sealWithActive = (text: string, aad: string): StoredBody & { kind: "sealed" } => {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv(ALGORITHM, activeKey!, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(aad, "utf8"));
    const ciphertext = Buffer.concat([cipher.update(text, "utf8"), cipher.final()]);
    return { kind: "sealed", ciphertext, iv, tag: cipher.getAuthTag(), keyVersion: activeVersion };
  };

  const open = (body: StoredBody, aad: string): string => {
    if (body.kind === "plain") return body.text;
    const key = keys.get(body.keyVersion);
    if (!key) throw openFailed(`key version ${body.keyVersion} is not configured`);
    if (body.iv.length !== IV_BYTES) throw openFailed("bad iv length");
    if (body.tag.length !== TAG_BYTES) throw openFailed("bad tag length");
    try {
      const decipher = createDecipheriv(ALGORITHM, key, body.iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(aad, "utf8"));
      decipher.setAuthTag(body.tag);
      const plain = Buffer.concat([decipher.update(body.ciphertext), decipher.final()]);
      return new TextDecoder("utf-8", { fatal: true }).decode(plain);
    } catch (error) {
      throw new AppError("internal", "message body could not be opened: authentication failed", { cause: error });
    }
  };

  return {
    sealVersion: options.encryptionEnabled ? activeVersion : 0,
    seal: (text, aad) => (options.encryptionEnabled ? sealWithActive(text, aad) : { kind: "plain", text }),
    open,
    reseal(body, aad) {
      if (!activeKey) throw new Error("no active message key to re-seal with");
      return sealWithActive(open(body, aad), aad);
    },
  };
}

/** The codec a process uses, from its configuration (CHAT_ENCRYPTION_ENABLED and the keyring). */
export function messageCodecFromConfig(config: { encryptionEnabled: boolean; messageKeys: ReadonlyMap<number, Buffer>; messageKeyActive: number }): MessageCodec {
  return createMessageCodec({ encryptionEnabled: config.encryptionEnabled, keyring: { keys: config.messageKeys, activeVersion: config.messageKeyActive } });
}
