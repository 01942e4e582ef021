/**
 * The memory allocator the token-service image runs `gatehouse serve` with: jemalloc, preloaded, with
 * the `MALLOC_CONF` of deploy/docker/token-service.Dockerfile (read from it, so the two cannot
 * drift). Benchmarks start the service the same way, so their figures are the image's.
 *
 * Measured (README, issue 15 sixth pass): against glibc's malloc, jemalloc's service used 0.83-0.97×
 * the CPU per Refresh in six paired runs (median 0.93×); with glibc, ~9 % of the process's samples
 * were in malloc. The image's `MALLOC_CONF` returns freed pages within a second, which keeps idle RSS
 * under glibc's (109-111 against 116 MB) at the same CPU as jemalloc's defaults.
 */
import { existsSync, readFileSync } from "node:fs";

const DOCKERFILE = new URL("../../deploy/docker/token-service.Dockerfile", import.meta.url);

/** Where Debian's libjemalloc2 puts the library (amd64, arm64) and where the image links it. */
const LIBRARY_PATHS = [
  "/usr/local/lib/libjemalloc.so.2",
  "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
  "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
];

/** The `MALLOC_CONF` the token-service image sets. */
export function imageMallocConf(): string {
  const dockerfile = readFileSync(DOCKERFILE, "utf8");
  const conf = /\bMALLOC_CONF=(\S+)/.exec(dockerfile)?.[1];
  if (conf === undefined) throw new Error("token-service.Dockerfile sets no MALLOC_CONF");
  return conf;
}

export interface ImageAllocator {
  /** What the service process gets: `LD_PRELOAD` and `MALLOC_CONF`, or nothing without jemalloc. */
  env: Record<string, string>;
  /** For a benchmark's notes: which allocator its figures were measured with. */
  description: string;
}

/**
 * The image's allocator on this machine, or glibc's malloc (and a description saying so) where
 * libjemalloc2 is not installed (`apt-get install -y libjemalloc2`; .ci/run installs it).
 */
export function imageAllocator(): ImageAllocator {
  const library = LIBRARY_PATHS.find((p) => existsSync(p));
  if (library === undefined) {
    return { env: {}, description: "glibc malloc: libjemalloc2 is not installed, unlike in the image" };
  }
  const conf = imageMallocConf();
  return {
    env: { LD_PRELOAD: library, MALLOC_CONF: conf },
    description: `jemalloc as in the image (LD_PRELOAD=${library}, MALLOC_CONF=${conf})`,
  };
}
