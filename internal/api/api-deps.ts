import type { ActorCommand, ActorResult, BodyCodec } from "../actor/index.js";
import type { TokenService } from "../auth/index.js";
import type { Database } from "../storage/index.js";
import type { Logger } from "../telemetry/index.js";

/** Where actor commands go: the local host, or (in a cluster) whichever node owns the conversation. */
export type ActorRouter = {
  tell(conversationId: string, command: ActorCommand): Promise<ActorResult>;
};

/** Ephemeral and derived notifications the API emits outside actor commits. */
export type Notifier = {
  readReceipt(conversationId: string, userId: string, lastReadSeq: bigint): Promise<void>;
};

export type ApiDeps = {
  db: Database;
  tokens: TokenService;
  actors: ActorRouter;
  codec: BodyCodec;
  notifier: Notifier;
  logger: Logger;
  maxMessageBytes: number;
};
