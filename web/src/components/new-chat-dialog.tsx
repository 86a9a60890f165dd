import { createSignal, Show } from "solid-js";
import { conversationClient, describeError } from "../api.js";
import { ConversationKind, type ChatStore } from "../chat-store.js";
import { navigate } from "../router.js";
import { Modal } from "./modal.jsx";

export const splitUsernames = (text: string) => [...new Set(text.split(/[\s,]+/).map((s) => s.replace(/^@/, "").trim().toLowerCase()).filter(Boolean))];

/** Start a direct chat by username, or create a group with a title and members by username. */
export function NewChatDialog(props: { store: ChatStore; onClose(): void }) {
  const [kind, setKind] = createSignal<"direct" | "group">("direct");
  const [error, setError] = createSignal("");
  const [busy, setBusy] = createSignal(false);

  const submit = async (event: SubmitEvent) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    setError("");
    setBusy(true);
    try {
      const res = kind() === "direct"
        ? await conversationClient.createConversation({ kind: ConversationKind.DIRECT, memberUsernames: splitUsernames(String(form.get("username") ?? "")).slice(0, 1) })
        : await conversationClient.createConversation({
          kind: ConversationKind.GROUP,
          title: String(form.get("title") ?? "").trim(),
          memberUsernames: splitUsernames(String(form.get("members") ?? "")),
        });
      if (res.conversation) {
        props.store.upsert(res.conversation);
        props.onClose();
        navigate(`/c/${res.conversation.id}`);
      }
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal title="New chat" onClose={props.onClose}>
      <div class="tabs" role="tablist" aria-label="Chat type">
        <button type="button" role="tab" aria-selected={kind() === "direct"} onClick={() => setKind("direct")}>Direct message</button>
        <button type="button" role="tab" aria-selected={kind() === "group"} onClick={() => setKind("group")}>Group</button>
      </div>
      <form class="stack" onSubmit={submit}>
        <Show when={kind() === "direct"} fallback={
          <>
            <label>Group name<input name="title" required maxLength={128} autofocus /></label>
            <label>
              <span>Members <span class="hint">(usernames, separated by commas)</span></span>
              <input name="members" required autocomplete="off" />
            </label>
          </>
        }>
          <label>Username<input name="username" required autocomplete="off" autofocus /></label>
        </Show>
        <Show when={error()}><p class="error" role="alert">{error()}</p></Show>
        <div class="row end">
          <button type="button" class="ghost" onClick={props.onClose}>Cancel</button>
          <button type="submit" class="primary" disabled={busy()}>{kind() === "direct" ? "Start chat" : "Create group"}</button>
        </div>
      </form>
    </Modal>
  );
}
