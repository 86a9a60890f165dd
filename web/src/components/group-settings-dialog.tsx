import { createSignal, For, Show } from "solid-js";
import { conversationClient, describeError } from "../api.js";
import { MemberRole, type ChatStore } from "../chat-store.js";
import { navigate } from "../router.js";
import { Modal } from "./modal.jsx";
import { splitUsernames } from "./new-chat-dialog.jsx";

const ROLE = { [MemberRole.OWNER]: "Owner", [MemberRole.ADMIN]: "Admin", [MemberRole.MEMBER]: "", [MemberRole.UNSPECIFIED]: "" } as const;

/** Rename a group, add and remove members (owner or admin), or leave it. */
export function GroupSettingsDialog(props: { store: ChatStore; conversationId: string; onClose(): void }) {
  const store = props.store;
  const conv = () => store.state.conversations[props.conversationId];
  const [error, setError] = createSignal("");
  const [busy, setBusy] = createSignal(false);
  const canManage = () => {
    const role = conv()?.members.find((m) => m.userId === store.me)?.role;
    return role === MemberRole.OWNER || role === MemberRole.ADMIN;
  };

  const run = async (action: () => Promise<{ conversation?: Parameters<ChatStore["upsert"]>[0] }>, form?: HTMLFormElement) => {
    setError("");
    setBusy(true);
    try {
      const res = await action();
      if (res.conversation) store.upsert(res.conversation);
      form?.reset();
      return true;
    } catch (e) {
      setError(describeError(e));
      return false;
    } finally {
      setBusy(false);
    }
  };

  const rename = (event: SubmitEvent) => {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const title = String(new FormData(form).get("title") ?? "").trim();
    void run(() => conversationClient.updateConversation({ conversationId: props.conversationId, title }));
  };
  const add = (event: SubmitEvent) => {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const usernames = splitUsernames(String(new FormData(form).get("usernames") ?? ""));
    void run(() => conversationClient.addMembers({ conversationId: props.conversationId, usernames }), form);
  };
  const remove = (userId: string) => run(() => conversationClient.removeMember({ conversationId: props.conversationId, userId }));
  const leave = async () => {
    if (await remove(store.me)) {
      props.onClose();
      navigate("/");
      void store.refreshList();
    }
  };

  return (
    <Modal title="Group settings" onClose={props.onClose}>
      <Show when={conv()}>
        <form class="row" onSubmit={rename}>
          <label class="grow">Group name<input name="title" value={conv()!.title} required maxLength={128} disabled={!canManage()} /></label>
          <button type="submit" disabled={busy() || !canManage()}>Rename</button>
        </form>
        <h3>Members</h3>
        <ul class="member-list" aria-label="Members">
          <For each={conv()!.members}>
            {(m) => (
              <li>
                <span class="grow">
                  {m.displayName || m.username} <span class="muted">@{m.username}</span>
                  <Show when={ROLE[m.role]}><span class="role">{ROLE[m.role]}</span></Show>
                </span>
                <Show when={canManage() && m.userId !== store.me && m.role !== MemberRole.OWNER}>
                  <button type="button" class="ghost danger" disabled={busy()} aria-label={`Remove ${m.username}`} onClick={() => void remove(m.userId)}>Remove</button>
                </Show>
              </li>
            )}
          </For>
        </ul>
        <Show when={canManage()}>
          <form class="row" onSubmit={add}>
            <label class="grow"><span>Add members <span class="hint">(usernames)</span></span><input name="usernames" required autocomplete="off" /></label>
            <button type="submit" disabled={busy()}>Add</button>
          </form>
        </Show>
        <Show when={error()}><p class="error" role="alert">{error()}</p></Show>
        <div class="row end">
          <button type="button" class="ghost danger" onClick={() => void leave()} disabled={busy()}>Leave group</button>
        </div>
      </Show>
    </Modal>
  );
}
