import { runProcess, startPresence } from "../../internal/app/index.js";

await runProcess("presence", (config, logger) => startPresence(config, logger));
