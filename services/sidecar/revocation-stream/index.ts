export { createFollowerMetrics, type FollowerMetrics } from "./follower-metrics.ts";
export {
  createStreamFollower,
  type FollowerLogger,
  type StreamFollower,
  type StreamFollowerOptions,
} from "./stream-follower.ts";
