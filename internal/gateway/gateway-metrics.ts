import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";

/** The gateway's Prometheus metrics (its own registry, like every process). */
export function createGatewayMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    connections: new Gauge({ name: "chat_gateway_connections", help: "Open WebSocket connections.", registers: [registry] }),
    subscriptions: new Gauge({ name: "chat_gateway_subscriptions", help: "Joined (connection, conversation) pairs.", registers: [registry] }),
    upgradesRefused: new Counter({ name: "chat_gateway_upgrades_refused_total", help: "Upgrades refused before the handshake, by HTTP status.", labelNames: ["status"] as const, registers: [registry] }),
    closes: new Counter({ name: "chat_gateway_closes_total", help: "Connections closed by the gateway, by close code.", labelNames: ["code"] as const, registers: [registry] }),
    framesIn: new Counter({ name: "chat_gateway_frames_in_total", help: "Client frames by type (refused = rate limited or invalid).", labelNames: ["type"] as const, registers: [registry] }),
    delivered: new Counter({ name: "chat_gateway_events_delivered_total", help: "Message events handed to sockets, by source.", labelNames: ["source"] as const, registers: [registry] }),
    ephemeralDropped: new Counter({ name: "chat_gateway_ephemeral_dropped_total", help: "Typing/presence/receipts dropped for slow sockets.", registers: [registry] }),
  };
}

export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;
