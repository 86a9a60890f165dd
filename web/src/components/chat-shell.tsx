import { createSignal, onCleanup, Show } from "solid-js";
import type { Session } from "../api.js";
import { createChatStore } from "../chat-store.js";
import { linkClick, routeConversationId } from "../router.js";
import { ConversationList } from "./conversation-list.jsx";
import { ConversationView } from "./conversation-view.jsx";
import { NewChatDialog } from "./new-chat-dialog.jsx";

const STATUS_TEXT = { connecting: "Connecting…", reconnecting: "Reconnecting…", stopped: "Offline", open: "" } as const;

export function ChatShell(props: { session: Session; onSignOut(): void }) {
  const store = createChatStore(props.session, { onTerminal: (code) => { if (code === 4001) props.onSignOut(); } });
  onCleanup(() => store.close());
  const [newChatOpen, setNewChatOpen] = createSignal(false);

  return (
    <div class="shell" classList={{ "has-conversation": routeConversationId() !== null }} onClick={linkClick}>
      <aside class="sidebar" aria-label="Sidebar">
        <header class="sidebar-header">
          <div class="me">
            <span class="avatar small" aria-hidden="true">{props.session.displayName.slice(0, 1).toUpperCase()}</span>
            <div class="me-text">
              <strong>{props.session.displayName}</strong>
              <span class="muted">@{props.session.username}</span>
            </div>
          </div>
          <button type="button" class="ghost" onClick={props.onSignOut}>Log out</button>
        </header>
        <Show when={store.connection() !== "open"}>
          <p class="banner" role="status">{STATUS_TEXT[store.connection()]}</p>
        </Show>
        <div class="sidebar-actions">
          <button type="button" class="primary wide" onClick={() => setNewChatOpen(true)}>New chat</button>
        </div>
        <ConversationList store={store} />
      </aside>
      <main class="main" id="main">
        <Show when={routeConversationId()} keyed fallback={<div class="empty-main"><p>Select a conversation or start a new one.</p></div>}>
          {(id) => <ConversationView store={store} conversationId={id} />}
        </Show>
      </main>
      <Show when={newChatOpen()}>
        <NewChatDialog store={store} onClose={() => setNewChatOpen(false)} />
      </Show>
    </div>
  );
}
