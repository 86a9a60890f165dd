import { onCleanup, onMount, type JSX } from "solid-js";

/**
 * A native modal <dialog>: the browser traps focus, closes on Escape and returns focus to the
 * element that opened it.
 */
export function Modal(props: { title: string; onClose(): void; children: JSX.Element }) {
  let dialog!: HTMLDialogElement;
  const opener = document.activeElement as HTMLElement | null;
  onMount(() => {
    dialog.showModal();
    dialog.querySelector<HTMLElement>("[autofocus], input, button:not(.close)")?.focus();
  });
  onCleanup(() => opener?.focus?.());
  return (
    <dialog ref={dialog} class="modal" aria-labelledby="modal-title" onClose={() => props.onClose()}
      onClick={(e) => { if (e.target === dialog) dialog.close(); }}>
      <div class="modal-body">
        <header class="modal-header">
          <h2 id="modal-title">{props.title}</h2>
          <button type="button" class="ghost close" aria-label="Close" onClick={() => dialog.close()}>✕</button>
        </header>
        {props.children}
      </div>
    </dialog>
  );
}
