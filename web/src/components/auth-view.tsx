import { createSignal, Show } from "solid-js";
import { authClient, describeError, type Session } from "../api.js";

export function AuthView(props: { onSignedIn(session: Session): void }) {
  const [mode, setMode] = createSignal<"login" | "register">("login");
  const [error, setError] = createSignal("");
  const [busy, setBusy] = createSignal(false);

  const submit = async (event: SubmitEvent) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const username = String(form.get("username") ?? "").trim().toLowerCase();
    const password = String(form.get("password") ?? "");
    setError("");
    setBusy(true);
    try {
      const res = mode() === "login"
        ? await authClient.login({ username, password })
        : await authClient.register({ username, password, displayName: String(form.get("displayName") ?? "").trim() });
      const user = res.user!;
      props.onSignedIn({
        token: res.token,
        userId: user.id,
        username: user.username,
        displayName: user.displayName || user.username,
        expiresAtMs: Number(res.expiresAtMs),
      });
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="auth">
      <div class="auth-card">
        <div class="brand" aria-hidden="true"><span class="brand-mark">●</span> Chat</div>
        <h1>{mode() === "login" ? "Welcome back" : "Create your account"}</h1>
        <div class="tabs" role="tablist" aria-label="Account">
          <button type="button" role="tab" aria-selected={mode() === "login"} onClick={() => { setMode("login"); setError(""); }}>Log in</button>
          <button type="button" role="tab" aria-selected={mode() === "register"} onClick={() => { setMode("register"); setError(""); }}>Register</button>
        </div>
        <form onSubmit={submit} class="stack" aria-label={mode() === "login" ? "Log in" : "Register"}>
          <label>
            Username
            <input name="username" autocomplete="username" required minLength={3} maxLength={32} pattern="[A-Za-z0-9_.\-]+" autofocus />
          </label>
          <Show when={mode() === "register"}>
            <label>
              <span>Display name <span class="hint">(optional)</span></span>
              <input name="displayName" autocomplete="nickname" maxLength={64} />
            </label>
          </Show>
          <label>
            Password
            <input name="password" type="password" required minLength={8} maxLength={256}
              autocomplete={mode() === "login" ? "current-password" : "new-password"} />
          </label>
          <Show when={error()}>
            <p class="error" role="alert">{error()}</p>
          </Show>
          <button class="primary" type="submit" disabled={busy()}>
            {busy() ? "Please wait…" : mode() === "login" ? "Log in" : "Create account"}
          </button>
        </form>
      </div>
    </main>
  );
}
