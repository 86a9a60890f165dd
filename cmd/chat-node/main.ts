import { runProcess } from "../../internal/app/index.js";
import { startChatNode } from "../../internal/app/index.js";

await runProcess("chat-node", (config, logger) => startChatNode(config, logger));
