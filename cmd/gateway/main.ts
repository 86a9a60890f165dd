import { runProcess, startGateway } from "../../internal/app/index.js";

await runProcess("gateway", (config, logger) => startGateway(config, logger));
