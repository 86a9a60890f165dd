-- Inbox rows per (user, conversation), maintained by the inbox worker. Every number here derives
-- from seqs (DESIGN §2.6): unread = text messages by others with seq > the member's last_read_seq.
-- A row is a cache: it is exact for (counted_seq, read_seq); when the conversation moved past
-- counted_seq only the messages in between are counted and added, when the read marker moved the
-- counts are recomputed. Readers (ListInbox) apply the same rule, so a stale or missing row is
-- never visible as a wrong number.

CREATE TABLE inbox (
  user_id          uuid NOT NULL REFERENCES users (id),
  conversation_id  uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  -- conversations.last_seq these counts cover.
  counted_seq      bigint NOT NULL DEFAULT 0,
  -- members.last_read_seq these counts were computed against.
  read_seq         bigint NOT NULL DEFAULT 0,
  unread_count     bigint NOT NULL DEFAULT 0 CHECK (unread_count >= 0),
  -- Unread text messages containing @username of this user.
  mention_count    bigint NOT NULL DEFAULT 0 CHECK (mention_count >= 0),
  -- Preview: the newest text message (its body is read from messages).
  last_message_id  uuid,
  last_message_seq bigint,
  last_activity_at timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, conversation_id),
  CHECK (counted_seq >= read_seq)
);
-- Cascading deletes of a conversation.
CREATE INDEX inbox_conversation_idx ON inbox (conversation_id);
