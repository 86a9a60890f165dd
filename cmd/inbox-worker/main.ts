import { runProcess, startInboxWorker } from "../../internal/app/index.js";

await runProcess("inbox-worker", (config, logger) => startInboxWorker(config, logger));
