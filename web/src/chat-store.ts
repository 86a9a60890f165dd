import { fromJson } from "@bufbuild/protobuf";
import { batch, createSignal } from "solid-js";
import { createStore, produce, reconcile } from "solid-js/store";
import { conversationClient, isNotFound, messageClient, type Session } from "./api.js";
import { createGatewaySocket, type GatewaySocket, type ServerFrame } from "./gateway-socket.js";
import {
  ConversationKind,
  MemberRole,
  MessageKind,
  MessageSchema,
  type Conversation as ConversationPb,
  type Message as MessagePb,
} from "./gen/chat/v1/common_pb.js";

export { ConversationKind, MemberRole, MessageKind };

/** A conversation event as the UI holds it (seqs as numbers: they stay far below 2^53). */
export type ChatMessage = {
  id: string;
  conversationId: string;
  seq: number;
  senderId: string;
  kind: MessageKind;
  body: string;
  subjectUserIds: string[];
  createdAtMs: number;
};

export type ChatMember = { userId: string; username: string; displayName: string; role: MemberRole; lastReadSeq: number };

export type ChatConversation = {
  id: string;
  kind: ConversationKind;
  title: string;
  members: ChatMember[];
  lastSeq: number;
  lastActivityAtMs: number;
  unreadCount: number;
  lastMessage: ChatMessage | null;
};

/** A message the server has not confirmed yet; retried with the same idempotency key. */
export type PendingMessage = {
  key: string;
  conversationId: string;
  body: string;
  status: "sending" | "failed";
  createdAtMs: number;
  error?: string;
  /** The live event for this send arrived before the SendMessage answer: show the real message only. */
  delivered?: boolean;
};

export type Timeline = { messages: ChatMessage[]; loaded: boolean; hasMoreBefore: boolean; loadingOlder: boolean };

type State = {
  conversations: Record<string, ChatConversation>;
  timelines: Record<string, Timeline>;
  pending: Record<string, PendingMessage[]>;
  /** conversationId → userId → typing expiry (epoch ms). */
  typing: Record<string, Record<string, number>>;
  presence: Record<string, "online" | "offline">;
  listLoaded: boolean;
  listError: string;
};

const TYPING_TTL_MS = 6_000;
const PAGE_SIZE = 50;
const GAP_PAGE_SIZE = 200;
/** Without a live socket the app polls so it stays usable (slower) when the gateway is down. */
const POLL_MS = 3_000;
const LIST_REFRESH_MS = 5_000;

export function toChatMessage(m: MessagePb): ChatMessage {
  return {
    id: m.id,
    conversationId: m.conversationId,
    seq: Number(m.seq),
    senderId: m.senderId,
    kind: m.kind,
    body: m.body,
    subjectUserIds: [...m.subjectUserIds],
    createdAtMs: Number(m.createdAtMs),
  };
}

function toChatConversation(c: ConversationPb): ChatConversation {
  return {
    id: c.id,
    kind: c.kind,
    title: c.title,
    members: c.members.map((m) => ({ userId: m.userId, username: m.username, displayName: m.displayName, role: m.role, lastReadSeq: Number(m.lastReadSeq) })),
    lastSeq: Number(c.lastSeq),
    lastActivityAtMs: Number(c.lastActivityAtMs),
    unreadCount: Number(c.unreadCount),
    lastMessage: c.lastMessage ? toChatMessage(c.lastMessage) : null,
  };
}

/** Inserts into a seq-ordered array unless that seq is already there. Returns whether it inserted. */
function insertBySeq(list: ChatMessage[], m: ChatMessage): boolean {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]!.seq < m.seq) lo = mid + 1;
    else hi = mid;
  }
  if (list[lo]?.seq === m.seq) return false;
  list.splice(lo, 0, m);
  return true;
}

function parsePresence(body: unknown): [string, "online" | "offline"][] {
  const out: [string, "online" | "offline"][] = [];
  const norm = (s: unknown): "online" | "offline" => (/online/i.test(String(s)) || s === true ? "online" : "offline");
  const root = (body as { statuses?: unknown })?.statuses ?? body;
  if (Array.isArray(root)) {
    for (const item of root) {
      const r = item as { userId?: string; status?: unknown; online?: unknown };
      if (r?.userId) out.push([r.userId, norm(r.status ?? r.online)]);
    }
  } else if (root && typeof root === "object") {
    for (const [userId, value] of Object.entries(root)) {
      const v = value as { status?: unknown; online?: unknown } | string;
      out.push([userId, norm(typeof v === "object" && v !== null ? (v.status ?? v.online) : v)]);
    }
  }
  return out;
}

/**
 * Everything the signed-in app knows, kept consistent with the server:
 * - each conversation's timeline is ordered and deduplicated by seq; `tail` is the highest seq
 *   up to which nothing is missing, and the only thing a reconnect needs (`join` with lastSeq);
 * - a seq beyond tail + 1 means a gap, filled with ListMessages(after_seq = tail) pages;
 * - sends go through SendMessage with an idempotency key kept until the server answers, so a
 *   retry can never create a second message.
 */
export function createChatStore(session: Session, hooks: { onTerminal(code: number): void }) {
  const me = session.userId;
  const [state, setState] = createStore<State>({
    conversations: {}, timelines: {}, pending: {}, typing: {}, presence: {}, listLoaded: false, listError: "",
  });
  const [openId, setOpenId] = createSignal<string | null>(null);
  const [now, setNow] = createSignal(Date.now());
  const tails = new Map<string, number>();
  const joined = new Set<string>();
  const gapFills = new Map<string, Promise<void>>();
  const timers: ReturnType<typeof setInterval>[] = [];
  let presenceAvailable = true;
  let closed = false;

  const socket: GatewaySocket = createGatewaySocket({
    url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`,
    token: session.token,
    onOpen: () => {
      joined.clear();
      for (const id of Object.keys(state.conversations)) join(id);
      void refreshList();
    },
    onFrame: (frame) => handleFrame(frame),
    onTerminal: (code) => hooks.onTerminal(code),
  });

  function join(id: string) {
    const tail = tails.get(id) ?? 0;
    if (socket.send({ type: "join", conversationId: id, lastSeq: String(tail) })) joined.add(id);
  }

  function upsertConversation(c: ChatConversation) {
    const known = state.conversations[c.id];
    if (!tails.has(c.id)) tails.set(c.id, c.lastSeq);
    if (known) {
      // Keep whatever is newer locally: live events may be ahead of the response.
      setState("conversations", c.id, reconcile({
        ...c,
        lastSeq: Math.max(c.lastSeq, known.lastSeq),
        lastActivityAtMs: Math.max(c.lastActivityAtMs, known.lastActivityAtMs),
        lastMessage: (known.lastMessage?.seq ?? 0) > (c.lastMessage?.seq ?? 0) ? known.lastMessage : c.lastMessage,
        unreadCount: openId() === c.id && document.visibilityState === "visible" ? known.unreadCount : c.unreadCount,
      }));
      if (c.lastSeq > (tails.get(c.id) ?? 0)) void fillGap(c.id);
    } else {
      setState("conversations", c.id, c);
      join(c.id);
    }
  }

  function removeConversation(id: string) {
    tails.delete(id);
    if (joined.delete(id)) socket.send({ type: "leave", conversationId: id });
    setState(produce((s) => {
      delete s.conversations[id];
      delete s.timelines[id];
      delete s.pending[id];
      delete s.typing[id];
    }));
  }

  async function refreshList() {
    try {
      const res = await conversationClient.listConversations({ limit: 200 });
      if (closed) return;
      const ids = new Set<string>();
      batch(() => {
        for (const c of res.conversations) {
          ids.add(c.id);
          upsertConversation(toChatConversation(c));
        }
        for (const id of Object.keys(state.conversations)) if (!ids.has(id) && id !== openId()) removeConversation(id);
        setState({ listLoaded: true, listError: "" });
      });
      void refreshPresence();
    } catch (error) {
      setState({ listLoaded: true, listError: "Couldn't load conversations." });
      void error;
    }
  }

  /** Loads one conversation (opening a URL, or after a membership change). False when not a member. */
  async function refreshConversation(id: string): Promise<boolean> {
    try {
      const res = await conversationClient.getConversation({ conversationId: id });
      if (res.conversation) upsertConversation(toChatConversation(res.conversation));
      return true;
    } catch (error) {
      if (isNotFound(error)) {
        removeConversation(id);
        return false;
      }
      throw error;
    }
  }

  async function refreshPresence() {
    if (!presenceAvailable) return;
    const userIds = [...new Set(Object.values(state.conversations).flatMap((c) => c.members.map((m) => m.userId)))].filter((id) => id !== me).slice(0, 500);
    if (userIds.length === 0) return;
    try {
      const res = await fetch("/presence/status/batch", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${session.token}` },
        body: JSON.stringify({ userIds }),
      });
      if (res.status === 404 || res.status === 502 || res.status === 503) {
        presenceAvailable = res.status !== 404; // 404: no presence service behind this origin at all
        return;
      }
      if (!res.ok) return;
      const entries = parsePresence(await res.json());
      setState("presence", produce((p) => {
        for (const [userId, status] of entries) p[userId] = status;
      }));
    } catch {
      // Presence is decoration: without it there are simply no dots.
    }
  }

  /** This tab's presence device id: one per tab, so two open tabs count as two devices. */
  const deviceId = (() => {
    let id = sessionStorage.getItem("chat.device");
    if (!id) sessionStorage.setItem("chat.device", (id = `web-${crypto.randomUUID()}`));
    return id;
  })();
  let heartbeatTimer: ReturnType<typeof setTimeout> | undefined;

  /** Keeps me online while the app is open: beats at a third of the TTL the service reports. */
  async function heartbeat() {
    let nextMs = 15_000;
    try {
      const res = await fetch("/presence/heartbeat", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${session.token}` },
        body: JSON.stringify({ deviceId }),
      });
      if (res.status === 404) return; // no presence service behind this origin: stop beating
      if (res.ok) {
        const ttlMs = Number((await res.json() as { ttlMs?: number }).ttlMs);
        if (ttlMs > 0) nextMs = Math.max(1_000, Math.round(ttlMs / 3));
      } else {
        nextMs = 30_000;
      }
    } catch {
      nextMs = 30_000;
    }
    if (!closed) heartbeatTimer = setTimeout(() => void heartbeat(), nextMs);
  }

  /** Applies one event. Returns true when it was new (not a duplicate). */
  function applyMessage(m: ChatMessage): boolean {
    const conv = state.conversations[m.conversationId];
    if (!conv) return false;
    const tail = tails.get(m.conversationId) ?? 0;
    const timeline = state.timelines[m.conversationId];
    if (m.seq <= tail && (!timeline || timeline.messages.some((x) => x.seq === m.seq) || (timeline.messages[0]?.seq ?? Infinity) > m.seq)) {
      return false; // already held (or older than anything shown: history paging will bring it)
    }
    let inserted = true;
    if (timeline) {
      setState("timelines", m.conversationId, "messages", produce((list) => { inserted = insertBySeq(list, m); }));
    } else {
      setState("timelines", m.conversationId, { messages: [m], loaded: false, hasMoreBefore: true, loadingOlder: false });
    }
    if (!inserted) return false;
    if (m.seq === tail + 1) {
      let next = m.seq;
      const held = new Set(state.timelines[m.conversationId]!.messages.map((x) => x.seq));
      while (held.has(next + 1)) next += 1;
      tails.set(m.conversationId, next);
    } else if (m.seq > tail + 1) {
      void fillGap(m.conversationId);
    }
    const isNew = m.seq > conv.lastSeq;
    const viewing = openId() === m.conversationId && document.visibilityState === "visible";
    setState("conversations", m.conversationId, produce((c) => {
      c.lastSeq = Math.max(c.lastSeq, m.seq);
      c.lastActivityAtMs = Math.max(c.lastActivityAtMs, m.createdAtMs);
      if (m.kind === MessageKind.TEXT && m.seq > (c.lastMessage?.seq ?? 0)) c.lastMessage = m;
      if (isNew && m.senderId !== me && !viewing) c.unreadCount += 1;
      if (m.kind === MessageKind.CONVERSATION_RENAMED && isNew) c.title = m.body;
    }));
    if (m.senderId !== me) clearTyping(m.conversationId, m.senderId);
    else if (m.kind === MessageKind.TEXT) {
      const list = state.pending[m.conversationId] ?? [];
      const index = list.findIndex((p) => !p.delivered && p.body === m.body);
      if (index >= 0) setState("pending", m.conversationId, index, "delivered", true);
    }
    if (isNew && (m.kind === MessageKind.MEMBERS_ADDED || m.kind === MessageKind.MEMBER_REMOVED)) {
      void refreshConversation(m.conversationId).catch(() => {});
    }
    return true;
  }

  /** Fetches everything after the tail, page by page; one fill per conversation at a time. */
  function fillGap(id: string): Promise<void> {
    const running = gapFills.get(id);
    if (running) return running;
    const run = (async () => {
      try {
        for (let pages = 0; pages < 50 && !closed; pages++) {
          const tail = tails.get(id);
          if (tail === undefined) return;
          const res = await messageClient.listMessages({ conversationId: id, afterSeq: BigInt(tail), limit: GAP_PAGE_SIZE });
          batch(() => { for (const m of res.messages) applyMessage(toChatMessage(m)); });
          if (!res.hasMore || res.messages.length === 0) return;
        }
      } catch (error) {
        if (isNotFound(error)) removeConversation(id);
      } finally {
        gapFills.delete(id);
      }
    })();
    gapFills.set(id, run);
    return run;
  }

  /** First page of a conversation's history (newest first page), merged with anything live. */
  async function openConversation(id: string): Promise<"ok" | "not-found" | "error"> {
    setOpenId(id);
    try {
      if (!state.conversations[id] && !(await refreshConversation(id))) return "not-found";
      if (!state.timelines[id]?.loaded) {
        const res = await messageClient.listMessages({ conversationId: id, limit: PAGE_SIZE });
        const page = res.messages.map(toChatMessage);
        batch(() => {
          if (!state.timelines[id]) setState("timelines", id, { messages: [], loaded: false, hasMoreBefore: true, loadingOlder: false });
          setState("timelines", id, produce((t) => {
            for (const m of page) insertBySeq(t.messages, m);
            t.loaded = true;
            t.hasMoreBefore = res.hasMore;
          }));
          const newest = page.at(-1)?.seq ?? 0;
          if (newest > (tails.get(id) ?? 0)) tails.set(id, newest);
        });
        await fillGap(id);
      }
      return "ok";
    } catch (error) {
      return isNotFound(error) ? "not-found" : "error";
    }
  }

  async function loadOlder(id: string): Promise<void> {
    const t = state.timelines[id];
    if (!t || !t.loaded || !t.hasMoreBefore || t.loadingOlder) return;
    const oldest = t.messages[0]?.seq ?? 0;
    if (oldest <= 1) {
      setState("timelines", id, "hasMoreBefore", false);
      return;
    }
    setState("timelines", id, "loadingOlder", true);
    try {
      const res = await messageClient.listMessages({ conversationId: id, beforeSeq: BigInt(oldest), limit: PAGE_SIZE });
      setState("timelines", id, produce((tl) => {
        for (const m of res.messages) insertBySeq(tl.messages, toChatMessage(m));
        tl.hasMoreBefore = res.hasMore;
      }));
    } finally {
      setState("timelines", id, "loadingOlder", false);
    }
  }

  function setMemberRead(conversationId: string, userId: string, seq: number) {
    const conv = state.conversations[conversationId];
    if (!conv) return;
    const index = conv.members.findIndex((m) => m.userId === userId);
    if (index >= 0 && conv.members[index]!.lastReadSeq < seq) setState("conversations", conversationId, "members", index, "lastReadSeq", seq);
    if (userId === me && seq >= conv.lastSeq) setState("conversations", conversationId, "unreadCount", 0);
  }

  /** Moves my read marker to the newest contiguous seq of the open conversation. */
  function markRead(id: string) {
    const conv = state.conversations[id];
    const tail = tails.get(id) ?? 0;
    if (!conv || tail === 0) return;
    const mine = conv.members.find((m) => m.userId === me);
    if (conv.unreadCount > 0) setState("conversations", id, "unreadCount", 0);
    if (!mine || mine.lastReadSeq >= tail) return;
    setMemberRead(id, me, tail);
    if (!socket.send({ type: "read", conversationId: id, seq: String(tail) })) {
      void messageClient.markRead({ conversationId: id, seq: BigInt(tail) }).catch(() => {});
    }
  }

  function clearTyping(conversationId: string, userId: string) {
    if (state.typing[conversationId]?.[userId]) setState("typing", conversationId, produce((t) => { delete t[userId]; }));
  }

  function handleFrame(frame: ServerFrame) {
    switch (frame.type) {
      case "message:new": {
        let m: ChatMessage;
        try {
          m = toChatMessage(fromJson(MessageSchema, frame.message as never, { ignoreUnknownFields: true }));
        } catch {
          return;
        }
        applyMessage(m);
        return;
      }
      case "joined": {
        const last = Number(frame.lastSeq);
        if (last > (tails.get(frame.conversationId) ?? 0)) void fillGap(frame.conversationId);
        return;
      }
      case "typing":
        if (frame.userId === me) return;
        if (frame.typing) setState("typing", frame.conversationId, (t) => ({ ...t, [frame.userId]: Date.now() + TYPING_TTL_MS }));
        else clearTyping(frame.conversationId, frame.userId);
        return;
      case "read:receipt":
        setMemberRead(frame.conversationId, frame.userId, Number(frame.lastReadSeq));
        return;
      case "presence":
        setState("presence", frame.userId, /online/i.test(frame.status) ? "online" : "offline");
        return;
      case "error":
        if (frame.code === "not_found" || frame.code === "permission_denied") {
          // A join for a conversation we were removed from: find out and drop it.
          for (const id of Object.keys(state.conversations)) if (!joined.has(id)) void refreshConversation(id).catch(() => {});
        }
        return;
      default:
        return;
    }
  }

  async function attemptSend(p: PendingMessage) {
    const update = (patch: Partial<PendingMessage>) =>
      setState("pending", p.conversationId, (list) => (list ?? []).map((x) => (x.key === p.key ? { ...x, ...patch } : x)));
    update({ status: "sending", error: undefined });
    try {
      const res = await messageClient.sendMessage({ conversationId: p.conversationId, body: p.body, idempotencyKey: p.key }, { timeoutMs: 10_000 });
      batch(() => {
        if (res.message) applyMessage(toChatMessage(res.message));
        setState("pending", p.conversationId, (list) => (list ?? []).filter((x) => x.key !== p.key));
      });
    } catch (error) {
      update({ status: "failed", error: String((error as Error).message ?? error) });
    }
  }

  let lastTypingSent = 0;
  let typingStop: ReturnType<typeof setTimeout> | undefined;

  timers.push(setInterval(() => {
    setNow(Date.now());
    const t = Date.now();
    for (const [cid, users] of Object.entries(state.typing)) {
      for (const [uid, until] of Object.entries(users)) if (until < t) clearTyping(cid, uid);
    }
  }, 1_000));
  timers.push(setInterval(() => {
    if (document.visibilityState !== "visible") return;
    if (socket.status() !== "open") {
      const id = openId();
      if (id && state.timelines[id]?.loaded) void fillGap(id);
    }
  }, POLL_MS));
  timers.push(setInterval(() => {
    if (document.visibilityState === "visible") void refreshList();
  }, LIST_REFRESH_MS));
  const onVisible = () => {
    if (document.visibilityState === "visible") void refreshList();
  };
  document.addEventListener("visibilitychange", onVisible);

  void refreshList();
  void heartbeat();

  return {
    me,
    state,
    now,
    openId,
    connection: socket.status,
    setOpenId,
    openConversation,
    loadOlder,
    markRead,
    refreshList,
    refreshConversation,
    sortedConversations(): ChatConversation[] {
      return Object.values(state.conversations).sort((a, b) => b.lastActivityAtMs - a.lastActivityAtMs || b.lastSeq - a.lastSeq);
    },
    send(conversationId: string, body: string) {
      const p: PendingMessage = { key: crypto.randomUUID(), conversationId, body, status: "sending", createdAtMs: Date.now() };
      setState("pending", conversationId, (list) => [...(list ?? []), p]);
      this.typing(conversationId, false);
      void attemptSend(p);
    },
    retry(conversationId: string, key: string) {
      const p = state.pending[conversationId]?.find((x) => x.key === key);
      if (p) void attemptSend({ ...p });
    },
    discard(conversationId: string, key: string) {
      setState("pending", conversationId, (list) => (list ?? []).filter((x) => x.key !== key));
    },
    /** Typing indicator: at most one `typing:true` every 2 s; `typing:false` after 4 s of quiet. */
    typing(conversationId: string, typing: boolean) {
      clearTimeout(typingStop);
      if (!typing) {
        if (lastTypingSent > 0) socket.send({ type: "typing", conversationId, typing: false });
        lastTypingSent = 0;
        return;
      }
      if (Date.now() - lastTypingSent > 2_000) {
        socket.send({ type: "typing", conversationId, typing: true });
        lastTypingSent = Date.now();
      }
      typingStop = setTimeout(() => this.typing(conversationId, false), 4_000);
    },
    typingUsers(conversationId: string): string[] {
      const users = state.typing[conversationId] ?? {};
      const t = now();
      return Object.entries(users).filter(([, until]) => until > t).map(([uid]) => uid);
    },
    upsert(c: ConversationPb) {
      upsertConversation(toChatConversation(c));
    },
    close() {
      closed = true;
      for (const t of timers) clearInterval(t);
      clearTimeout(typingStop);
      clearTimeout(heartbeatTimer);
      document.removeEventListener("visibilitychange", onVisible);
      socket.close();
    },
  };
}

export type ChatStore = ReturnType<typeof createChatStore>;
