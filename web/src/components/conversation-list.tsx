import { For, Show } from "solid-js";
import type { ChatStore } from "../chat-store.js";
import { conversationTitle, directPeer, memberName, shortTime, systemText } from "../format.js";
import { routeConversationId } from "../router.js";
import { Avatar } from "./avatar.jsx";

/** Conversations, newest activity first. Arrow keys move between entries. */
export function ConversationList(props: { store: ChatStore }) {
  const store = props.store;
  const onKeyDown = (event: KeyboardEvent) => {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const links = [...(event.currentTarget as HTMLElement).querySelectorAll<HTMLAnchorElement>("a.conversation")];
    const index = links.indexOf(document.activeElement as HTMLAnchorElement);
    const next = links[Math.max(0, Math.min(links.length - 1, index + (event.key === "ArrowDown" ? 1 : -1)))];
    if (next) {
      event.preventDefault();
      next.focus();
    }
  };
  return (
    <nav class="conversation-list" aria-label="Conversations" onKeyDown={onKeyDown}>
      <Show when={store.state.listLoaded} fallback={<p class="muted pad">Loading…</p>}>
        <Show when={store.state.listError}><p class="error pad" role="alert">{store.state.listError}</p></Show>
        <Show when={store.sortedConversations().length > 0} fallback={<p class="muted pad">No conversations yet.</p>}>
          <ul>
            <For each={store.sortedConversations()}>
              {(conv) => {
                const title = () => conversationTitle(conv, store.me);
                const peer = () => directPeer(conv, store.me);
                const preview = () => {
                  const m = conv.lastMessage;
                  if (!m) return "No messages yet";
                  return systemText(conv, m, store.me) ?? `${m.senderId === store.me ? "You: " : conv.kind === 2 ? `${memberName(conv, m.senderId, store.me)}: ` : ""}${m.body}`;
                };
                const unread = () => conv.unreadCount;
                const label = () => {
                  const parts = [title()];
                  if (peer() && store.state.presence[peer()!.userId]) parts.push(store.state.presence[peer()!.userId]!);
                  if (unread() > 0) parts.push(`${unread()} unread`);
                  return parts.join(", ");
                };
                return (
                  <li>
                    <a class="conversation" href={`/c/${conv.id}`} aria-current={routeConversationId() === conv.id ? "page" : undefined}
                      aria-label={label()} data-conversation-id={conv.id}>
                      <Avatar id={conv.id} name={title()} group={conv.kind === 2} presence={peer() ? store.state.presence[peer()!.userId] : undefined} />
                      <span class="conversation-text">
                        <span class="conversation-top">
                          <span class="conversation-title">{title()}</span>
                          <span class="conversation-time">{shortTime(conv.lastActivityAtMs)}</span>
                        </span>
                        <span class="conversation-bottom">
                          <span class="conversation-preview" classList={{ strong: unread() > 0 }}>{preview()}</span>
                          <Show when={unread() > 0}>
                            <span class="badge" data-testid="unread-badge">{unread() > 99 ? "99+" : unread()}</span>
                          </Show>
                        </span>
                      </span>
                    </a>
                  </li>
                );
              }}
            </For>
          </ul>
        </Show>
      </Show>
    </nav>
  );
}
