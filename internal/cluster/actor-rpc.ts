import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  TellRequestSchema,
  TellResponseSchema,
  type TellRequest,
  type TellResponse,
} from "../gen/chat/cluster/v1/cluster_pb.js";
import { MessageSchema } from "../gen/chat/v1/common_pb.js";
import type { ActorCommand, ActorResult } from "../actor/index.js";
import { AppError, errorMappings, type ErrorCode } from "../errors/index.js";

/** The ActorService definition for grpc-js, (de)serialized with the protobuf-es generated schemas. */
export const actorServiceDefinition = {
  tell: {
    path: "/chat.cluster.v1.ActorService/Tell",
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: TellRequest) => Buffer.from(toBinary(TellRequestSchema, m)),
    requestDeserialize: (b: Buffer) => fromBinary(TellRequestSchema, b),
    responseSerialize: (m: TellResponse) => Buffer.from(toBinary(TellResponseSchema, m)),
    responseDeserialize: (b: Buffer) => fromBinary(TellResponseSchema, b),
    originalName: "tell",
  },
} satisfies grpc.ServiceDefinition;

export function encodeCommand(conversationId: string, command: ActorCommand, fromNodeId: string): TellRequest {
  const c = (() => {
    switch (command.type) {
      case "send":
        return { case: "send" as const, value: { senderId: command.senderId, body: command.body, idempotencyKey: command.idempotencyKey ?? "" } };
      case "addMembers":
        return { case: "addMembers" as const, value: { actorId: command.actorId, userIds: command.userIds } };
      case "removeMember":
        return { case: "removeMember" as const, value: { actorId: command.actorId, userId: command.userId } };
      case "rename":
        return { case: "rename" as const, value: { actorId: command.actorId, title: command.title } };
    }
  })();
  return create(TellRequestSchema, { conversationId, fromNodeId, command: c as never });
}

export function decodeCommand(req: TellRequest): ActorCommand {
  const c = req.command;
  switch (c.case) {
    case "send":
      return { type: "send", senderId: c.value.senderId, body: c.value.body, idempotencyKey: c.value.idempotencyKey || null };
    case "addMembers":
      return { type: "addMembers", actorId: c.value.actorId, userIds: c.value.userIds };
    case "removeMember":
      return { type: "removeMember", actorId: c.value.actorId, userId: c.value.userId };
    case "rename":
      return { type: "rename", actorId: c.value.actorId, title: c.value.title };
    default:
      throw new AppError("invalid_argument", "empty command");
  }
}

export function encodeResult(result: ActorResult): TellResponse {
  const e = result.event;
  return create(TellResponseSchema, {
    duplicate: result.duplicate,
    event: e
      ? create(MessageSchema, {
          id: e.id, conversationId: e.conversationId, seq: e.seq, senderId: e.senderId, kind: e.kind, body: e.body,
          subjectUserIds: e.subjectUserIds, createdAtMs: BigInt(e.createdAt),
        })
      : undefined,
  });
}

export function decodeResult(res: TellResponse): ActorResult {
  const e = res.event;
  return {
    duplicate: res.duplicate,
    event: e
      ? {
          id: e.id, conversationId: e.conversationId, seq: e.seq, senderId: e.senderId, kind: e.kind, body: e.body,
          subjectUserIds: e.subjectUserIds, createdAt: Number(e.createdAtMs), idempotencyKey: null,
        }
      : null,
  };
}

const grpcCodes: Record<ErrorCode, grpc.status> = {
  invalid_argument: grpc.status.INVALID_ARGUMENT,
  unauthenticated: grpc.status.UNAUTHENTICATED,
  permission_denied: grpc.status.PERMISSION_DENIED,
  not_found: grpc.status.NOT_FOUND,
  already_exists: grpc.status.ALREADY_EXISTS,
  failed_precondition: grpc.status.FAILED_PRECONDITION,
  resource_exhausted: grpc.status.RESOURCE_EXHAUSTED,
  not_owner: grpc.status.UNAVAILABLE,
  unavailable: grpc.status.UNAVAILABLE,
  deadline_exceeded: grpc.status.DEADLINE_EXCEEDED,
  internal: grpc.status.INTERNAL,
};

/** An AppError as a grpc-js status carrying the exact code (and owner hint) in metadata. */
export function toGrpcError(error: unknown): grpc.ServiceError {
  const appError = AppError.from(error);
  const metadata = new grpc.Metadata();
  metadata.set("x-chat-error", appError.code);
  if (appError.details.ownerNodeId) metadata.set("x-chat-owner", appError.details.ownerNodeId);
  return Object.assign(new Error(appError.message), { code: grpcCodes[appError.code], details: appError.message, metadata });
}

/** The inverse of toGrpcError; transport failures (refused, reset, deadline) become `unavailable`. */
export function fromGrpcError(error: grpc.ServiceError): AppError {
  const code = error.metadata?.get("x-chat-error")[0];
  if (typeof code === "string" && code in errorMappings) {
    const owner = error.metadata.get("x-chat-owner")[0];
    return new AppError(code as ErrorCode, error.details || error.message, {
      cause: error,
      details: typeof owner === "string" ? { ownerNodeId: owner } : {},
    });
  }
  return new AppError("unavailable", "owner node unreachable", { cause: error });
}

/** One pooled HTTP/2 channel per owner address. */
export class ActorClients {
  private readonly clients = new Map<string, grpc.Client>();

  tell(address: string, req: TellRequest, deadlineMs: number): Promise<ActorResult> {
    let client = this.clients.get(address);
    if (!client) {
      client = new grpc.Client(address, grpc.credentials.createInsecure(), {
        "grpc.keepalive_time_ms": 10_000,
        "grpc.keepalive_timeout_ms": 5_000,
        "grpc.max_receive_message_length": 1 << 20,
        "grpc.initial_reconnect_backoff_ms": 100,
        "grpc.max_reconnect_backoff_ms": 1_000,
      });
      this.clients.set(address, client);
    }
    const def = actorServiceDefinition.tell;
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize, req, new grpc.Metadata(),
        { deadline: Date.now() + deadlineMs },
        (err, res) => (err ? reject(fromGrpcError(err)) : resolve(decodeResult(res!))));
    });
  }

  /** Drops channels to addresses no longer in the member list. */
  retain(addresses: Set<string>): void {
    for (const [address, client] of this.clients) {
      if (!addresses.has(address)) {
        client.close();
        this.clients.delete(address);
      }
    }
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }
}

/** Serves ActorService on host:port (0 = any free port); resolves with the bound port. */
export async function serveActorService(
  handle: (req: TellRequest) => Promise<TellResponse>,
  host: string,
  port: number,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = new grpc.Server({ "grpc.max_receive_message_length": 1 << 20 });
  server.addService(actorServiceDefinition, {
    tell: (call: grpc.ServerUnaryCall<TellRequest, TellResponse>, callback: grpc.sendUnaryData<TellResponse>) => {
      handle(call.request).then((res) => callback(null, res), (err: unknown) => callback(toGrpcError(err)));
    },
  });
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port: bound,
    close: () => new Promise<void>((resolve) => {
      const force = setTimeout(() => { server.forceShutdown(); resolve(); }, 2_000);
      server.tryShutdown(() => { clearTimeout(force); resolve(); });
    }),
  };
}
