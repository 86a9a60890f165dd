import { listMembers, Rendezvous } from "../../internal/cluster/index.js";
import { createRedis, redisKeys } from "../../internal/redis/index.js";
import type { CommandGroup } from "./command.js";

const SAMPLE_KEYS = 10_000;

export const clusterCommands: CommandGroup = {
  summary: "chat-node cluster",
  commands: {
    status: {
      summary: "members, leases, ring ownership share and live actors per node",
      async run(config, _args, out) {
        const redis = createRedis(config.redisUrl, { lazyConnect: true });
        try {
          const members = await listMembers(redis, redisKeys(config.redisPrefix));
          if (members.length === 0) {
            out("cluster: no chat-node holds a lease");
            return 1;
          }
          const ring = new Rendezvous(members.map((m) => m.member.nodeId));
          const share = new Map<string, number>();
          for (let i = 0; i < SAMPLE_KEYS; i++) {
            const owner = ring.owner(`sample-${i}`)!;
            share.set(owner, (share.get(owner) ?? 0) + 1);
          }
          out(`cluster: ${members.length} member(s)`);
          out(["node", "lease_left_ms", "ring_share", "live_actors", "grpc", "api", "up_since"].join("\t"));
          for (const { member, leaseMsLeft } of members) {
            out([
              member.nodeId,
              String(leaseMsLeft),
              `${(((share.get(member.nodeId) ?? 0) / SAMPLE_KEYS) * 100).toFixed(1)}%`,
              String(member.liveActors),
              member.grpcAddress,
              member.apiUrl,
              new Date(member.startedAtMs).toISOString(),
            ].join("\t"));
          }
          return 0;
        } finally {
          redis.disconnect();
        }
      },
    },
    owner: {
      summary: "which node owns a conversation: cluster owner <conversationId>",
      async run(config, args, out) {
        if (args.length !== 1) {
          out("usage: chatctl cluster owner <conversationId>");
          return 2;
        }
        const redis = createRedis(config.redisUrl, { lazyConnect: true });
        try {
          const members = await listMembers(redis, redisKeys(config.redisPrefix));
          const owner = new Rendezvous(members.map((m) => m.member.nodeId)).owner(args[0]!);
          out(owner ?? "no members");
          return owner ? 0 : 1;
        } finally {
          redis.disconnect();
        }
      },
    },
  },
};
