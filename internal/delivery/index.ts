export { createDeliverySink, createDeliveryNotifier } from "./delivery-sink.js";
export { createFanOut } from "./fan-out.js";
export type { FanOut, FanOutOptions } from "./fan-out.js";
export { createDeliveryHub } from "./hub.js";
export type { DeliveryHub, DeliveryHubOptions, Subscriber, Subscription } from "./hub.js";
export { createEventService } from "./event-service.js";
export type { EventService, EventServiceOptions } from "./event-service.js";
export { messageEvent, ephemeralEvent, decodeEvent, removedUserIds } from "./event-codec.js";
export type { HubEvent } from "./event-codec.js";
