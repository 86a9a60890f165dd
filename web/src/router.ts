import { createSignal } from "solid-js";

/** A tiny history-API router: the app has two kinds of screens, the list and `/c/<conversationId>`. */
const [path, setPath] = createSignal(location.pathname);

window.addEventListener("popstate", () => setPath(location.pathname));

export { path };

export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (to === location.pathname) return;
  if (options.replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  setPath(to);
}

/** The conversation id in the URL, or null on the list screen. */
export function routeConversationId(): string | null {
  const match = /^\/c\/([^/]+)\/?$/.exec(path());
  return match ? decodeURIComponent(match[1]!) : null;
}

/** Lets plain `<a href>` links navigate without a page load (keeps modifier-clicks native). */
export function linkClick(event: MouseEvent): void {
  const anchor = (event.target as Element).closest("a");
  if (!anchor || anchor.target || anchor.origin !== location.origin) return;
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(anchor.pathname);
}
