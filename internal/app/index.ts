export { runProcess, closeAll } from "./run-process.js";
export type { Process } from "./run-process.js";
export { startChatNode } from "./chat-node.js";
export type { ChatNode, ChatNodeOverrides } from "./chat-node.js";
