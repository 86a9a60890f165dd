import { defineConfig } from "vite";
import solid from "vite-plugin-solid";

// Dev server: one origin for the browser, like cmd/web in production. Ports are the defaults of
// internal/config (CHAT_WEB_PORT, CHAT_NODE_PORT, CHAT_GATEWAY_PORT, CHAT_PRESENCE_PORT); web/
// never imports internal/, so they are repeated here.
const api = "http://127.0.0.1:3001";
const proxy = {
  "^/chat\\.v1\\.": { target: api },
  "/api": { target: api },
  "/ws": { target: "ws://127.0.0.1:4000", ws: true },
  "/presence": { target: "http://127.0.0.1:4001", rewrite: (path: string) => path.replace(/^\/presence/, "") },
};

export default defineConfig({
  root: import.meta.dirname,
  plugins: [solid()],
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", sourcemap: false },
  server: { port: 3000, strictPort: true, proxy },
  preview: { port: 3000, strictPort: true, proxy },
});
