import { createSignal, type Accessor } from "solid-js";

/** A server → client frame of the gateway protocol (docs/websocket.md), JSON mode. */
export type ServerFrame =
  | { type: "joined"; conversationId: string; lastSeq: string; ref?: string }
  | { type: "message:new"; conversationId: string; seq: string; message: unknown }
  | { type: "typing"; conversationId: string; userId: string; typing: boolean }
  | { type: "read:receipt"; conversationId: string; userId: string; lastReadSeq: string }
  | { type: "presence"; userId: string; status: string; lastSeenMs?: string }
  | { type: "ack"; ref?: string; message?: unknown; lastReadSeq?: string }
  | { type: "error"; code: string; message: string; ref?: string };

export type ClientFrame =
  | { type: "join"; conversationId: string; lastSeq?: string }
  | { type: "leave"; conversationId: string }
  | { type: "typing"; conversationId: string; typing: boolean }
  | { type: "read"; conversationId: string; seq: string; ref?: string };

export type SocketStatus = "connecting" | "open" | "reconnecting" | "stopped";

export type GatewaySocketOptions = {
  url: string;
  token: string;
  /** Every (re)connect: re-join each conversation with the last seq held so the gateway replays the rest. */
  onOpen(): void;
  onFrame(frame: ServerFrame): void;
  /** Closed with a terminal code (4000-4099): reconnecting with this token would be refused again. */
  onTerminal(code: number, reason: string): void;
};

const MIN_BACKOFF_MS = 300;
const MAX_BACKOFF_MS = 8_000;

/**
 * One WebSocket to the gateway that reconnects by itself: exponential backoff with full jitter
 * (300 ms doubling to 8 s), immediately when the browser comes back online. Close codes 4000-4099
 * are terminal (docs/websocket.md); every other close is retried. Frames sent while closed are
 * dropped (send() returns false): callers resync through `onOpen`.
 */
export function createGatewaySocket(options: GatewaySocketOptions) {
  const [status, setStatus] = createSignal<SocketStatus>("connecting");
  let socket: WebSocket | null = null;
  let attempt = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;

  const connect = () => {
    clearTimeout(timer);
    if (stopped) return;
    // The token rides in a subprotocol next to the format, so it stays out of URLs and access logs.
    const ws = new WebSocket(options.url, ["chat.v1.json", `bearer.${options.token}`]);
    socket = ws;
    setStatus(attempt === 0 ? "connecting" : "reconnecting");
    ws.onopen = () => {
      attempt = 0;
      setStatus("open");
      options.onOpen();
    };
    ws.onmessage = (event) => {
      if (typeof event.data !== "string") return;
      let frame: ServerFrame;
      try {
        frame = JSON.parse(event.data) as ServerFrame;
      } catch {
        return;
      }
      options.onFrame(frame);
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      socket = null;
      if (stopped) return;
      if (event.code >= 4000 && event.code <= 4099) {
        stopped = true;
        setStatus("stopped");
        options.onTerminal(event.code, event.reason);
        return;
      }
      scheduleReconnect();
    };
  };

  const scheduleReconnect = () => {
    setStatus("reconnecting");
    const ceiling = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** attempt);
    attempt += 1;
    clearTimeout(timer);
    timer = setTimeout(connect, MIN_BACKOFF_MS / 2 + Math.random() * ceiling);
  };

  const online = () => {
    if (!stopped && socket === null) {
      attempt = 0;
      connect();
    }
  };
  window.addEventListener("online", online);
  connect();

  return {
    status: status as Accessor<SocketStatus>,
    send(frame: ClientFrame): boolean {
      if (socket?.readyState !== WebSocket.OPEN) return false;
      socket.send(JSON.stringify(frame));
      return true;
    },
    close(): void {
      stopped = true;
      clearTimeout(timer);
      window.removeEventListener("online", online);
      setStatus("stopped");
      socket?.close(1000, "logout");
      socket = null;
    },
  };
}

export type GatewaySocket = ReturnType<typeof createGatewaySocket>;
