import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  TellBatchRequestSchema,
  TellBatchResponseSchema,
  TellRequestSchema,
  TellResponseSchema,
  TellResultSchema,
  type TellBatchRequest,
  type TellBatchResponse,
  type TellRequest,
  type TellResponse,
  type TellResult,
} from "../gen/chat/cluster/v1/cluster_pb.js";
import { Coalescer } from "../batching/index.js";
import { eventFromProto, eventToProto, type ActorCommand, type ActorResult } from "../actor/index.js";
import { AppError, errorMappings, type ErrorCode } from "../errors/index.js";

/** The ActorService definition for grpc-js, (de)serialized with the protobuf-es generated schemas. */
export const actorServiceDefinition = {
  tellBatch: {
    path: "/chat.cluster.v1.ActorService/TellBatch",
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: TellBatchRequest) => Buffer.from(toBinary(TellBatchRequestSchema, m)),
    requestDeserialize: (b: Buffer) => fromBinary(TellBatchRequestSchema, b),
    responseSerialize: (m: TellBatchResponse) => Buffer.from(toBinary(TellBatchResponseSchema, m)),
    responseDeserialize: (b: Buffer) => fromBinary(TellBatchResponseSchema, b),
    originalName: "tellBatch",
  },
} satisfies grpc.ServiceDefinition;

/** Commands per forwarded batch at most. */
const MAX_FORWARD_BATCH = 512;

export function encodeCommand(conversationId: string, command: ActorCommand): TellRequest {
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
  return create(TellRequestSchema, { conversationId, command: c as never });
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
  return create(TellResponseSchema, { duplicate: result.duplicate, event: result.event ? eventToProto(result.event) : undefined });
}

export function decodeResult(res: TellResponse): ActorResult {
  return { duplicate: res.duplicate, event: res.event ? eventFromProto(res.event) : null };
}

/** One command's outcome for the batch answer: its result, or its AppError by code. */
export function toTellResult(outcome: PromiseSettledResult<ActorResult>): TellResult {
  if (outcome.status === "fulfilled") return create(TellResultSchema, { result: { case: "ok", value: encodeResult(outcome.value) } });
  const e = AppError.from(outcome.reason);
  return create(TellResultSchema, {
    result: { case: "error", value: { code: e.code, message: e.message, ownerNodeId: e.details.ownerNodeId ?? "" } },
  });
}

function fromTellResult(result: TellResult): ActorResult {
  if (result.result.case === "ok") return decodeResult(result.result.value);
  if (result.result.case === "error") {
    const { code, message, ownerNodeId } = result.result.value;
    const known = code in errorMappings ? (code as ErrorCode) : "internal";
    throw new AppError(known, message, { details: ownerNodeId ? { ownerNodeId } : {} });
  }
  throw new AppError("internal", "empty result from owner");
}

/**
 * Forwarding to other nodes: one pooled HTTP/2 channel per owner address, and per address a
 * coalescer, so commands that queue while a batch is in flight travel together in the next one.
 * Transport failures (refused, reset, deadline) fail every command of the batch as `unavailable`.
 */
export class ActorClients {
  private readonly peers = new Map<string, {
    client: grpc.Client;
    batches: Coalescer<TellRequest, ActorResult | AppError>;
    inFlight: Set<grpc.ClientUnaryCall>;
  }>();

  constructor(private readonly fromNodeId: string, private readonly deadlineMs: number) {}

  async tell(address: string, req: TellRequest): Promise<ActorResult> {
    const outcome = await this.peer(address).batches.submit(req);
    if (outcome instanceof AppError) throw outcome;
    return outcome;
  }

  private peer(address: string) {
    let peer = this.peers.get(address);
    if (peer) return peer;
    const client = new grpc.Client(address, grpc.credentials.createInsecure(), {
      "grpc.keepalive_time_ms": 10_000,
      "grpc.keepalive_timeout_ms": 5_000,
      "grpc.max_receive_message_length": 16 << 20,
      "grpc.max_send_message_length": 16 << 20,
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 1_000,
    });
    const def = actorServiceDefinition.tellBatch;
    const inFlight = new Set<grpc.ClientUnaryCall>();
    const batches = new Coalescer<TellRequest, ActorResult | AppError>(
      (requests) => new Promise((resolve) => {
        const batch = create(TellBatchRequestSchema, { requests, fromNodeId: this.fromNodeId });
        let done = false;
        const call: grpc.ClientUnaryCall = client.makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize, batch, new grpc.Metadata(),
          { deadline: Date.now() + this.deadlineMs },
          (err, res) => {
            done = true;
            if (call) inFlight.delete(call);
            if (err || !res || res.results.length !== requests.length) {
              const failure = new AppError("unavailable", "owner node unreachable", { cause: err });
              return resolve(requests.map(() => failure));
            }
            resolve(res.results.map((r) => {
              try {
                return fromTellResult(r);
              } catch (error) {
                return AppError.from(error);
              }
            }));
          });
        if (!done) inFlight.add(call);
      }),
      { parallel: 4, maxWeight: MAX_FORWARD_BATCH, weight: () => 1 },
    );
    peer = { client, batches, inFlight };
    this.peers.set(address, peer);
    return peer;
  }

  /**
   * Drops channels to addresses no longer in the member list, cancelling calls still waiting on
   * them (a paused peer would otherwise hold them until their deadline): their callers retry on
   * the new owner at once.
   */
  retain(addresses: Set<string>): void {
    for (const [address, peer] of this.peers) {
      if (!addresses.has(address)) {
        for (const call of peer.inFlight) call.cancel();
        peer.client.close();
        this.peers.delete(address);
      }
    }
  }

  close(): void {
    for (const peer of this.peers.values()) peer.client.close();
    this.peers.clear();
  }
}

/** Serves ActorService on host:port (0 = any free port); resolves with the bound port. */
export async function serveActorService(
  handle: (req: TellRequest) => Promise<ActorResult>,
  host: string,
  port: number,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = new grpc.Server({ "grpc.max_receive_message_length": 16 << 20, "grpc.max_send_message_length": 16 << 20 });
  server.addService(actorServiceDefinition, {
    tellBatch: (call: grpc.ServerUnaryCall<TellBatchRequest, TellBatchResponse>, callback: grpc.sendUnaryData<TellBatchResponse>) => {
      const requests = call.request.requests.slice(0, MAX_FORWARD_BATCH);
      Promise.allSettled(requests.map((r) => handle(r))).then((outcomes) =>
        callback(null, create(TellBatchResponseSchema, { results: outcomes.map(toTellResult) })));
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
