import { createSignal, onCleanup, Show } from "solid-js";
import { loadSession, saveSession, setAuth, type Session } from "../api.js";
import { navigate } from "../router.js";
import { AuthView } from "./auth-view.jsx";
import { ChatShell } from "./chat-shell.jsx";

export function App() {
  const [session, setSession] = createSignal<Session | null>(loadSession());

  const signIn = (s: Session) => {
    saveSession(s);
    setSession(s);
  };
  const signOut = () => {
    saveSession(null);
    setAuth(null);
    setSession(null);
    navigate("/", { replace: true });
  };
  const expiry = setInterval(() => {
    const s = session();
    if (s && s.expiresAtMs < Date.now()) signOut();
  }, 30_000);
  onCleanup(() => clearInterval(expiry));

  return (
    <Show when={session()} keyed fallback={<AuthView onSignedIn={signIn} />}>
      {(s) => {
        setAuth(s.token, signOut);
        return <ChatShell session={s} onSignOut={signOut} />;
      }}
    </Show>
  );
}
