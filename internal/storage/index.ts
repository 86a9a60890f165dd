export { createDatabase, pingDatabase } from "./database.js";
export type { Database, DatabaseOptions } from "./database.js";
export { migrate } from "./migrate.js";
export { insertUser, findUserByUsername, listUsers } from "./users.js";
export {
  findConversationForMember,
  listConversationsForMember,
  findDirectConversationId,
  insertConversation,
  advanceReadMarker,
} from "./conversations.js";
export type { NewConversation } from "./conversations.js";
export {
  commitBatches,
  activateConversation,
  listMessagesByIdempotencyKey,
  listMessages,
  insertEvents,
} from "./events.js";
export type { NewEvent, Commit, MembershipChange, Activation } from "./events.js";
export { isMember, findMemberLastSeq, listLastSeqs } from "./members.js";
export {
  refreshInboxForConversation,
  listStaleInboxConversations,
  listInboxForUser,
  findEventHeader,
  listCoMemberIds,
  insertOutboxRows,
} from "./inbox.js";
export type { InboxCounts, InboxEntryRecord } from "./inbox.js";
export { memberRoles } from "./records.js";
export type {
  UserRecord,
  MemberRecord,
  MemberRole,
  ConversationKind,
  ConversationRecord,
  MessageRecord,
  StoredBody,
  OutboxEntry,
} from "./records.js";
