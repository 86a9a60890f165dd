import type { StoredBody } from "../storage/index.js";

/**
 * Turns message text into what is stored and back. `aad` binds a sealed body to its conversation
 * and message id so a ciphertext moved to another row fails to open.
 */
export type BodyCodec = {
  seal(text: string, aad: string): StoredBody;
  open(body: StoredBody, aad: string): string;
};

/** Stores text as is; opens plaintext rows only. */
export const plainCodec: BodyCodec = {
  seal: (text) => ({ kind: "plain", text }),
  open: (body) => {
    if (body.kind !== "plain") throw new Error("encrypted body but encryption is not configured");
    return body.text;
  },
};

export const bodyAad = (conversationId: string, messageId: string): string => `${conversationId}:${messageId}`;
