import { bodyAad, type CommittedEvent } from "../actor/index.js";
import type { MessageCodec } from "./message-codec.js";

/** The `body` of a chat.message.created Kafka event when encryption is on (same key and AAD as at rest). */
export type SealedOutboxBody = {
  sealed: true;
  alg: "AES-256-GCM";
  keyVersion: number;
  /** base64 */
  iv: string;
  /** base64 */
  ciphertext: string;
  /** base64, 16 bytes */
  tag: string;
  /** The authenticated data: `<conversationId>:<messageId>`. */
  aad: string;
};

/**
 * What the outbox (and so Kafka) carries as a message body. With encryption off: the plaintext.
 * With encryption on: a SealedOutboxBody (a fresh IV; consumers holding the keyring open it with the
 * same AAD), unless `plaintextBodies` (CHAT_KAFKA_PLAINTEXT_BODIES) says consumers get plaintext.
 */
export function createOutboxBody(codec: MessageCodec, options: { plaintextBodies: boolean }): (event: CommittedEvent) => unknown {
  if (codec.sealVersion === 0 || options.plaintextBodies) return (e) => e.body;
  return (e) => {
    const aad = bodyAad(e.conversationId, e.id);
    const sealed = codec.seal(e.body, aad);
    if (sealed.kind !== "sealed") return e.body;
    const out: SealedOutboxBody = {
      sealed: true, alg: "AES-256-GCM", keyVersion: sealed.keyVersion,
      iv: sealed.iv.toString("base64"), ciphertext: sealed.ciphertext.toString("base64"), tag: sealed.tag.toString("base64"), aad,
    };
    return out;
  };
}
