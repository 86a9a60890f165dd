-- Users, conversations, members, the message log and the Kafka outbox.

CREATE TABLE users (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  username      text NOT NULL CHECK (username ~ '^[a-z0-9_.-]{3,32}$'),
  display_name  text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 64),
  password_hash text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username_key ON users (username);

CREATE TABLE conversations (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  kind             text NOT NULL CHECK (kind IN ('direct', 'group')),
  title            text NOT NULL DEFAULT '' CHECK (length(title) <= 128),
  -- "<smaller user id>:<larger user id>" for direct conversations: one per pair.
  direct_key       text UNIQUE,
  created_by       uuid NOT NULL REFERENCES users (id),
  -- Seq of the newest event; only the actor holding `epoch` advances it.
  last_seq         bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
  -- Bumped by every actor activation; commits are conditional on it (fencing).
  epoch            bigint NOT NULL DEFAULT 0,
  created_at       timestamptz NOT NULL DEFAULT now(),
  last_activity_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((kind = 'direct') = (direct_key IS NOT NULL))
);

CREATE TABLE members (
  conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  user_id         uuid NOT NULL REFERENCES users (id),
  role            text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
  last_read_seq   bigint NOT NULL DEFAULT 0,
  joined_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (conversation_id, user_id)
);
-- ListConversations: a user's memberships.
CREATE INDEX members_user_id_idx ON members (user_id);

CREATE TABLE messages (
  conversation_id  uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  seq              bigint NOT NULL CHECK (seq >= 1),
  id               uuid NOT NULL UNIQUE,
  sender_id        uuid NOT NULL REFERENCES users (id),
  -- chat.v1.MessageKind
  kind             smallint NOT NULL,
  -- Plaintext body, or NULL when encrypted (ciphertext, iv, tag and key_version set).
  body             text,
  ciphertext       bytea,
  iv               bytea,
  tag              bytea,
  key_version      integer,
  subject_user_ids uuid[] NOT NULL DEFAULT '{}',
  idempotency_key  text CHECK (length(idempotency_key) <= 128),
  -- The actor epoch under which this row was committed (audited by the invariant checker).
  epoch            bigint NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (conversation_id, seq),
  UNIQUE (conversation_id, sender_id, idempotency_key),
  CHECK ((body IS NULL) = (ciphertext IS NOT NULL)),
  CHECK ((ciphertext IS NULL) OR (iv IS NOT NULL AND tag IS NOT NULL AND key_version IS NOT NULL))
);
-- Previews: newest text message per conversation.
CREATE INDEX messages_text_idx ON messages (conversation_id, seq DESC) WHERE kind = 1;

-- Transactional outbox: written in the same transaction as the event, relayed to Kafka.
CREATE TABLE outbox (
  id         bigserial PRIMARY KEY,
  topic      text NOT NULL,
  key        text NOT NULL,
  event_id   text NOT NULL,
  payload    jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  sent_at    timestamptz
);
CREATE INDEX outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL;
