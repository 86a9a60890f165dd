import { runProcess, startKafkaMirror } from "../../internal/app/index.js";

await runProcess("kafka-mirror", (config, logger) => startKafkaMirror(config, logger));
