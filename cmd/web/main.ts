import { resolve } from "node:path";
import { runProcess, startWebServer } from "../../internal/app/index.js";

/** Serves the production build of the web app (`vite build web` → web/dist). */
const distDir = resolve(import.meta.dirname, "../../web/dist");

await runProcess("web", (config, logger) => startWebServer(config, logger, { distDir }));
