import type { JWTPayload } from "jose";
import { TokenService } from "../gen/proto/gatehouse/v1/token_service_pb.ts";
import { type RedisTarget, redisTargetOf } from "../shared/revocation/redis-target.ts";
import { redisSettings } from "../shared/settings/common-settings.ts";
import { loadSettings } from "../shared/settings/settings.ts";
import type { RevocationCode } from "../sidecar/revocation-state/revocation-state.ts";
import { type ConnectionFlags, connectionTarget, withConnection } from "./rpc-connection.ts";

/**
 * Whether `gatehouse token inspect` could tell if a token is revoked, and what it found. It asks the
 * token service (Introspect: Postgres, the source of truth) when it has credentials, else reads the
 * revocation stream in Redis as a sidecar would, else says it did not check.
 */
export type RevocationCheck =
  | {
      checked: true;
      via: string;
      /**
       * `live`: not revoked; `revoked`: the stream revokes it (`reason` says how); `inactive`:
       * Introspect said not active, which covers revoked, expired and not signed by that service.
       */
      verdict: "live" | "revoked" | "inactive";
      reason?: string;
    }
  | { checked: false; why: string };

export interface RevocationSources {
  connection: ConnectionFlags;
  /** REDIS_URL or REDIS_SENTINELS (and theirs), when set. */
  redis: RedisTarget | undefined;
  /** GATEHOUSE_REVOCATION_STREAM, or its default. */
  stream: string;
}

const DEFAULT_STREAM = "gatehouse:revocations";

export function revocationSourcesFromEnv(connection: ConnectionFlags): RevocationSources {
  return {
    connection,
    redis: redisTargetOf(loadSettings(redisSettings)),
    stream: process.env.GATEHOUSE_REVOCATION_STREAM || DEFAULT_STREAM,
  };
}

function hasCredentials(flags: ConnectionFlags): boolean {
  try {
    connectionTarget(flags);
    return true;
  } catch {
    return false;
  }
}

async function byIntrospect(token: string, flags: ConnectionFlags): Promise<RevocationCheck> {
  const { server } = connectionTarget(flags);
  const res = await withConnection(TokenService, flags, (c) => c.call("introspect", { token }));
  const via = `the token service at ${server} (Introspect)`;
  return { checked: true, via, verdict: res.active ? "live" : "inactive" };
}

async function byStream(claims: JWTPayload, kid: string | undefined, sources: RevocationSources) {
  // Loaded only here: inspect without Redis should not pay for ioredis.
  const [{ createRedisBus }, { decodeRevocationEntry }, { createMemoryRevocationState }, { STREAM_START }] =
    await Promise.all([
      import("../shared/revocation/redis-bus.ts"),
      import("../shared/revocation/revocation-entry.ts"),
      import("../sidecar/revocation-state/memory-revocation-state.ts"),
      import("../shared/revocation/stream-id.ts"),
    ]);
  const bus = createRedisBus({ url: sources.redis?.url, redis: sources.redis?.redis, name: "gatehouse-cli" });
  try {
    const info = await bus.info(sources.stream);
    const via = `the revocation stream ${sources.stream} in Redis`;
    if (info === null) {
      return {
        checked: false,
        why: `${via} does not exist (nothing revoked yet, or another GATEHOUSE_REVOCATION_STREAM)`,
      } as const;
    }
    const state = createMemoryRevocationState();
    for (let after = STREAM_START; ; ) {
      const page = await bus.range(sources.stream, after, 2000);
      for (const entry of page) {
        const event = decodeRevocationEntry(entry.fields);
        if (event) state.apply(event);
      }
      if (page.length < 2000) break;
      after = page.at(-1)!.id;
    }
    const code: RevocationCode | null = state.check({
      jti: String(claims.jti ?? ""),
      subject: String(claims.sub ?? ""),
      clientId: String(claims.client_id ?? ""),
      kid: kid ?? "",
      issuedAt: typeof claims.iat === "number" ? claims.iat : 0,
      sessionId: typeof claims.sid === "string" ? claims.sid : undefined,
      sessionVersion: typeof claims.sv === "number" ? claims.sv : undefined,
    });
    return code === null
      ? ({ checked: true, via, verdict: "live" } as const)
      : ({ checked: true, via, verdict: "revoked", reason: code } as const);
  } finally {
    await bus.close();
  }
}

/** Asks the token service, else Redis; a source that fails is named in the answer, never hidden. */
export async function checkRevocation(
  token: string,
  claims: JWTPayload,
  kid: string | undefined,
  sources: RevocationSources,
): Promise<RevocationCheck> {
  const failures: string[] = [];
  if (hasCredentials(sources.connection)) {
    try {
      return await byIntrospect(token, sources.connection);
    } catch (err) {
      failures.push(`token service: ${(err as Error).message}`);
    }
  }
  if (sources.redis) {
    try {
      const answer = await byStream(claims, kid, sources);
      if (answer.checked) return answer;
      failures.push(answer.why);
    } catch (err) {
      failures.push(`Redis: ${(err as Error).message}`);
    }
  }
  if (failures.length > 0) return { checked: false, why: failures.join("; ") };
  return {
    checked: false,
    why: "set GATEHOUSE_CLIENT_ID/GATEHOUSE_CLIENT_SECRET (an introspector or admin client) or REDIS_URL (or REDIS_SENTINELS)",
  };
}
