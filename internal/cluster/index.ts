export { Membership, listMembers } from "./membership.js";
export type { Member, MembershipOptions } from "./membership.js";
export { Rendezvous, murmur3 } from "./rendezvous.js";
export { ClusterRouter } from "./cluster-router.js";
export type { ClusterRouterOptions, LocalActors } from "./cluster-router.js";
export { serveActorService } from "./actor-rpc.js";
