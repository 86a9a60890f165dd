export { createMessageCodec, messageCodecFromConfig, IV_BYTES, TAG_BYTES, KEY_BYTES } from "./message-codec.js";
export type { MessageCodec, MessageCodecOptions, Keyring } from "./message-codec.js";
export { createOutboxBody } from "./outbox-body.js";
export type { SealedOutboxBody } from "./outbox-body.js";
export {
  runKeyRotation,
  requestKeyRotation,
  keyRotationStatus,
  findRotationCheckpoint,
  countRowsByKeyVersion,
  createKeyRotationWorker,
} from "./key-rotation.js";
export type { RotationCheckpoint, KeyRotationDeps, KeyRotationStatus, KeyRotationWorker, KeyRotationJobData } from "./key-rotation.js";
