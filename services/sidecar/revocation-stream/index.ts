export {
  type BusFollower,
  type BusFollowerOptions,
  type BusFollowerSidecarOptions,
  createBusFollower,
} from "./bus-follower.ts";
export { createFollowerMetrics, type FollowerMetrics } from "./follower-metrics.ts";
export {
  createStreamFollower,
  DEFAULT_PAGE_SIZE,
  type FollowerLogger,
  type StreamFollower,
  type StreamFollowerOptions,
} from "./stream-follower.ts";
