import { Show } from "solid-js";
import { hueOf, initials } from "../format.js";

/** A coloured initials badge, with a presence dot when the status is known. */
export function Avatar(props: { id: string; name: string; presence?: "online" | "offline"; group?: boolean }) {
  return (
    <span class="avatar" classList={{ group: props.group }} data-hue={hueOf(props.id) % 12} aria-hidden="true">
      {initials(props.name)}
      <Show when={props.presence}>
        <span class={`presence-dot ${props.presence}`} />
      </Show>
    </span>
  );
}
