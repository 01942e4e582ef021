import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { encodeRevocationEntry } from "../../services/shared/revocation/revocation-entry.ts";

/**
 * Appends `count` token_revoked events (the wire format the relay writes, each with its own jti,
 * alive for an hour) to `key` in pipelined XADD batches; resolves with the seconds it took. For
 * bootstrap and footprint benchmarks: the caller deletes the key afterwards.
 */
export async function fillRevocationStream(redis: Redis, key: string, count: number): Promise<number> {
  const t0 = performance.now();
  const at = Date.now();
  const until = Math.floor(at / 1000) + 3600;
  for (let done = 0; done < count; ) {
    const chunk = Math.min(10_000, count - done);
    const p = redis.pipeline();
    for (let i = 0; i < chunk; i++) {
      p.xadd(
        key,
        "*",
        ...encodeRevocationEntry({ id: randomUUID(), type: "token_revoked", at, until, jti: randomUUID() }),
      );
    }
    await p.exec();
    done += chunk;
  }
  return (performance.now() - t0) / 1000;
}
