export {
  createStreamFollower,
  DEFAULT_PAGE_SIZE,
  type StreamFollower,
} from "./stream-follower.ts";
