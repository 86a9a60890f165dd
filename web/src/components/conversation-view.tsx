import { createEffect, createMemo, createSignal, For, on, onCleanup, onMount, Show } from "solid-js";
import { ConversationKind, MessageKind, type ChatStore } from "../chat-store.js";
import { clockTime, conversationTitle, directPeer, memberName, systemText } from "../format.js";
import { Avatar } from "./avatar.jsx";
import { GroupSettingsDialog } from "./group-settings-dialog.jsx";

/** Within this many pixels of the bottom the view follows new messages. */
const STICK_PX = 80;
/** Within this many pixels of the top the next older page is loaded. */
const LOAD_OLDER_PX = 120;

export function ConversationView(props: { store: ChatStore; conversationId: string }) {
  const store = props.store;
  const id = props.conversationId;
  const [status, setStatus] = createSignal<"loading" | "ok" | "not-found" | "error">("loading");
  const [settingsOpen, setSettingsOpen] = createSignal(false);
  const [draft, setDraft] = createSignal("");
  let scroller!: HTMLDivElement;
  let composer!: HTMLTextAreaElement;
  let heading!: HTMLHeadingElement;
  let atBottom = true;

  const conv = () => store.state.conversations[id];
  const timeline = () => store.state.timelines[id];
  const messages = () => timeline()?.messages ?? [];
  const pending = () => (store.state.pending[id] ?? []).filter((p) => !p.delivered);
  const title = () => (conv() ? conversationTitle(conv()!, store.me) : "");
  const peer = () => (conv() ? directPeer(conv()!, store.me) : undefined);

  const load = async () => {
    setStatus("loading");
    const result = await store.openConversation(id);
    setStatus(result);
    if (result === "ok") {
      requestAnimationFrame(() => {
        scrollToBottom();
        if (window.matchMedia("(min-width: 721px)").matches) composer?.focus();
        else heading?.focus();
      });
    }
  };
  onMount(() => void load());
  onCleanup(() => {
    store.typing(id, false);
    if (store.openId() === id) store.setOpenId(null);
  });

  const scrollToBottom = () => {
    if (scroller) scroller.scrollTop = scroller.scrollHeight;
  };

  // Follow new messages when the reader is at the bottom; keep the position when older ones load.
  let lastFirstSeq = 0;
  let lastHeight = 0;
  createEffect(on([() => messages().length, () => pending().length, () => store.typingUsers(id).length], () => {
    if (!scroller) return;
    const firstSeq = messages()[0]?.seq ?? 0;
    const prepended = lastFirstSeq !== 0 && firstSeq < lastFirstSeq;
    const heightBefore = lastHeight;
    lastFirstSeq = firstSeq;
    queueMicrotask(() => {
      if (prepended && !atBottom) scroller.scrollTop += scroller.scrollHeight - heightBefore;
      else if (atBottom) scrollToBottom();
      lastHeight = scroller.scrollHeight;
    });
  }));

  // Read marker: everything shown is read while the page is visible and the reader is at the bottom.
  const markIfReading = () => {
    if (status() === "ok" && document.visibilityState === "visible" && atBottom) store.markRead(id);
  };
  createEffect(on([() => conv()?.lastSeq, status], () => queueMicrotask(markIfReading)));
  const onVisibility = () => markIfReading();
  document.addEventListener("visibilitychange", onVisibility);
  window.addEventListener("focus", onVisibility);
  onCleanup(() => {
    document.removeEventListener("visibilitychange", onVisibility);
    window.removeEventListener("focus", onVisibility);
  });

  const onScroll = () => {
    atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < STICK_PX;
    lastHeight = scroller.scrollHeight;
    if (scroller.scrollTop < LOAD_OLDER_PX && timeline()?.hasMoreBefore) void store.loadOlder(id);
    if (atBottom) markIfReading();
  };

  /** "Seen by" goes under my newest message: who (other than me) has read up to it. */
  const seen = createMemo(() => {
    const c = conv();
    if (!c) return null;
    const mine = messages().filter((m) => m.senderId === store.me && m.kind === MessageKind.TEXT).at(-1);
    if (!mine) return null;
    const readers = c.members.filter((m) => m.userId !== store.me && m.lastReadSeq >= mine.seq);
    if (readers.length === 0) return null;
    const text = c.kind === ConversationKind.DIRECT ? "Seen" : `Seen by ${readers.map((r) => r.displayName || r.username).join(", ")}`;
    return { seq: mine.seq, text };
  });

  const typingText = () => {
    const names = store.typingUsers(id).map((uid) => memberName(conv(), uid, store.me));
    if (names.length === 0) return "";
    if (names.length === 1) return `${names[0]} is typing…`;
    if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
    return "Several people are typing…";
  };

  const subtitle = () => {
    const c = conv();
    if (!c) return "";
    if (c.kind === ConversationKind.GROUP) return `${c.members.length} members`;
    const p = peer();
    const presence = p ? store.state.presence[p.userId] : undefined;
    return p ? `@${p.username}${presence ? ` · ${presence}` : ""}` : "";
  };

  const submit = (event?: Event) => {
    event?.preventDefault();
    const body = draft().trim();
    if (!body) return;
    store.send(id, body);
    setDraft("");
    atBottom = true;
    composer.focus();
  };

  const onComposerKey = (event: KeyboardEvent) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) submit(event);
  };

  return (
    <section class="conversation-view" aria-labelledby="conversation-title">
      <header class="conversation-header">
        <a class="back" href="/" aria-label="Back to conversations">‹</a>
        <Show when={conv()}>
          <Avatar id={id} name={title()} group={conv()!.kind === ConversationKind.GROUP} presence={peer() ? store.state.presence[peer()!.userId] : undefined} />
        </Show>
        <div class="conversation-heading">
          <h2 id="conversation-title" tabindex="-1" ref={heading}>{status() === "not-found" ? "Conversation unavailable" : title() || "Loading…"}</h2>
          <span class="muted">{subtitle()}</span>
        </div>
        <Show when={conv()?.kind === ConversationKind.GROUP}>
          <button type="button" class="ghost" onClick={() => setSettingsOpen(true)}>Group settings</button>
        </Show>
      </header>

      <Show when={status() !== "not-found"} fallback={
        <div class="notice" role="alert">
          <p>This conversation doesn't exist, or you are not a member of it.</p>
          <a href="/">Back to your conversations</a>
        </div>
      }>
        <Show when={status() !== "error"} fallback={
          <div class="notice" role="alert">
            <p>Couldn't load this conversation.</p>
            <button type="button" onClick={() => void load()}>Try again</button>
          </div>
        }>
          <div class="messages" ref={scroller} onScroll={onScroll} role="log" aria-label={`Messages in ${title()}`} aria-live="polite" tabindex="0">
            <Show when={timeline()?.hasMoreBefore && timeline()?.loaded}>
              <div class="load-older">
                <button type="button" class="link" onClick={() => void store.loadOlder(id)} disabled={timeline()?.loadingOlder}>
                  {timeline()?.loadingOlder ? "Loading…" : "Load earlier messages"}
                </button>
              </div>
            </Show>
            <Show when={status() === "loading" && messages().length === 0}><p class="muted center">Loading messages…</p></Show>
            <For each={messages()}>
              {(m, index) => {
                const system = () => systemText(conv(), m, store.me);
                const mine = m.senderId === store.me;
                const previous = () => messages()[index() - 1];
                const showSender = () => !mine && conv()?.kind === ConversationKind.GROUP &&
                  (previous()?.senderId !== m.senderId || previous()?.kind !== MessageKind.TEXT);
                return (
                  <Show when={system() === null} fallback={<p class="system" data-seq={m.seq}>{system()}</p>}>
                    <div class="message" classList={{ mine, theirs: !mine }} data-seq={m.seq} data-testid="message">
                      <Show when={showSender()}><span class="sender">{memberName(conv(), m.senderId, store.me)}</span></Show>
                      <div class="bubble">
                        <span class="body">{m.body}</span>
                        <span class="meta"><time datetime={new Date(m.createdAtMs).toISOString()}>{clockTime(m.createdAtMs)}</time></span>
                      </div>
                      <Show when={seen()?.seq === m.seq}>
                        <span class="seen" data-testid="seen">{seen()!.text}</span>
                      </Show>
                    </div>
                  </Show>
                );
              }}
            </For>
            <For each={pending()}>
              {(p) => (
                <div class="message mine pending" classList={{ failed: p.status === "failed" }} data-testid="pending-message">
                  <div class="bubble">
                    <span class="body">{p.body}</span>
                    <span class="meta">{p.status === "sending" ? "Sending…" : "Not sent"}</span>
                  </div>
                  <Show when={p.status === "failed"}>
                    <span class="failed-actions" role="alert">
                      Failed to send.
                      <button type="button" class="link" onClick={() => store.retry(id, p.key)}>Retry</button>
                      <button type="button" class="link" onClick={() => store.discard(id, p.key)}>Discard</button>
                    </span>
                  </Show>
                </div>
              )}
            </For>
          </div>
          <p class="typing" aria-live="polite" data-testid="typing">{typingText()}</p>
          <form class="composer" onSubmit={submit}>
            <label class="visually-hidden" for="composer-input">Message</label>
            <textarea id="composer-input" ref={composer} rows={1} placeholder="Write a message…" value={draft()}
              disabled={status() !== "ok"} maxLength={4096}
              onInput={(e) => { setDraft(e.currentTarget.value); store.typing(id, e.currentTarget.value.length > 0); }}
              onKeyDown={onComposerKey} onBlur={() => store.typing(id, false)} />
            <button type="submit" class="primary" disabled={status() !== "ok" || draft().trim() === ""}>Send</button>
          </form>
        </Show>
      </Show>
      <Show when={settingsOpen() && conv()}>
        <GroupSettingsDialog store={store} conversationId={id} onClose={() => setSettingsOpen(false)} />
      </Show>
    </section>
  );
}
