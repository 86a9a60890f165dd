export { ActorHost } from "./actor-host.js";
export type { ActorHostOptions } from "./actor-host.js";
export { openRecord } from "./conversation-actor.js";
export type { EventSink } from "./conversation-actor.js";
export { plainCodec, bodyAad } from "./body-codec.js";
export type { BodyCodec } from "./body-codec.js";
export { EventKind } from "./commands.js";
export type { ActorCommand, ActorResult, CommittedEvent } from "./commands.js";
export { topics, outboxForEvents, outboxForRead, kindName } from "./outbox-events.js";
