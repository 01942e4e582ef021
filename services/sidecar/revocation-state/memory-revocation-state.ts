import type { RevocationEvent } from "../../shared/revocation/revocation-events.ts";
import type { RevocationCode, RevocationState, RevokableToken } from "./revocation-state.ts";
import { createUuidUntilTable, type UuidUntilTable } from "./uuid-until-table.ts";

export interface MemoryRevocationStateOptions {
  /** How long the state stays trusted after the last {@link MemoryRevocationState.markFresh}. Default 30 s. */
  stalenessBoundMs?: number;
  /**
   * Entries are kept this long past their `until` before {@link MemoryRevocationState.prune} drops
   * them, so a token accepted within the verifier's clock skew after its `exp` is still checked.
   * Default 300 s (the largest skew the settings allow).
   */
  pruneGraceSeconds?: number;
}

export interface MemoryRevocationState extends RevocationState {
  /** Applies one event; applying the same event again changes nothing. False for an unknown type. */
  apply(event: RevocationEvent): boolean;
  /** The stream reader calls this after every successful read, empty or not. */
  markFresh(nowMs: number): void;
  /** Drops entries that no longer matter; returns how many. O(size): call it on a timer, not per request. */
  prune(nowSeconds: number): number;
  /**
   * A hint before a bootstrap of about `entries` events: sizes the jti index once instead of
   * growing it step by step (each step rehashes everything held so far).
   */
  reserve(entries: number): void;
  /** Forgets everything (before a re-bootstrap). Also makes the state stale until the next markFresh. */
  clear(): void;
  /** Number of entries over all kinds. */
  readonly size: number;
  /** Epoch ms of the last markFresh, or undefined before the first. */
  readonly freshAt: number | undefined;
}

/** A cut-off: tokens issued before `notBefore` (epoch ms) are dead; the entry matters until `until` (s). */
interface Cutoff {
  notBefore: number;
  until: number;
}

interface MinVersion {
  minVersion: number;
  until: number;
}

/**
 * Ids to untils: canonical UUIDs (the token service's jtis and session ids) in a typed-array table,
 * anything else in a Map, so ids minted elsewhere still work.
 */
interface UntilIndex {
  set(id: string, until: number): void;
  reserve(entries: number): void;
  has(id: string): boolean;
  prune(limit: number): number;
  clear(): void;
  readonly size: number;
}

function createUntilIndex(): UntilIndex {
  const uuids: UuidUntilTable = createUuidUntilTable();
  const others = new Map<string, number>();
  return {
    set(id, until) {
      if (uuids.set(id, until)) return;
      const old = others.get(id);
      if (old === undefined || old < until) others.set(id, until);
    },
    has: (id) => uuids.get(id) !== undefined || (others.size > 0 && others.has(id)),
    reserve: (entries) => uuids.reserve(entries),
    prune(limit) {
      let removed = uuids.prune(limit);
      for (const [id, until] of others) {
        if (until < limit) {
          others.delete(id);
          removed++;
        }
      }
      return removed;
    },
    clear() {
      uuids.clear();
      others.clear();
    },
    get size() {
      return uuids.size + others.size;
    },
  };
}

/**
 * The sidecar's revocation state: one index per event kind, O(1) lookups. Revoked jtis and sessions,
 * the kinds that reach a million, live in {@link createUuidUntilTable} (16 bytes a key, off the JS
 * heap); the rest in Maps. Repeated events merge by maximum, so replaying a stream from any point
 * converges to the same state.
 */
export function createMemoryRevocationState(
  options: MemoryRevocationStateOptions = {},
): MemoryRevocationState {
  const stalenessBoundMs = options.stalenessBoundMs ?? 30_000;
  const graceSeconds = options.pruneGraceSeconds ?? 300;
  if (!(stalenessBoundMs > 0)) throw new TypeError("stalenessBoundMs must be positive");
  if (!(graceSeconds >= 0)) throw new TypeError("pruneGraceSeconds must be zero or more");

  const tokens = createUntilIndex();
  const sessions = createUntilIndex();
  const keys = new Map<string, number>();
  const versions = new Map<string, MinVersion>();
  const subjects = new Map<string, Cutoff>();
  const clients = new Map<string, Cutoff>();
  let freshAt: number | undefined;

  const setUntil = (map: Map<string, number>, id: string, until: number) => {
    const old = map.get(id);
    if (old === undefined || old < until) map.set(id, until);
  };
  const setCutoff = (map: Map<string, Cutoff>, id: string, notBefore: number, until: number) => {
    const old = map.get(id);
    if (old === undefined) map.set(id, { notBefore, until });
    else {
      old.notBefore = Math.max(old.notBefore, notBefore);
      old.until = Math.max(old.until, until);
    }
  };
  const pruneMap = (map: Map<string, number | { until: number }>, limit: number) => {
    let removed = 0;
    for (const [id, entry] of map) {
      if ((typeof entry === "number" ? entry : entry.until) < limit) {
        map.delete(id);
        removed++;
      }
    }
    return removed;
  };

  return {
    apply(event) {
      switch (event.type) {
        case "token_revoked":
          tokens.set(event.jti, event.until);
          return true;
        case "session_revoked":
          sessions.set(event.sid, event.until);
          return true;
        case "key_revoked":
          setUntil(keys, event.kid, event.until);
          return true;
        case "session_version": {
          const old = versions.get(event.sid);
          if (old === undefined)
            versions.set(event.sid, { minVersion: event.minVersion, until: event.until });
          else {
            old.minVersion = Math.max(old.minVersion, event.minVersion);
            old.until = Math.max(old.until, event.until);
          }
          return true;
        }
        case "subject_revoked":
          setCutoff(subjects, event.sub, event.notBefore, event.until);
          return true;
        case "client_disabled":
          setCutoff(clients, event.clientId, event.notBefore, event.until);
          return true;
        default:
          return false;
      }
    },

    check(token: RevokableToken): RevocationCode | null {
      if (keys.size > 0 && keys.has(token.kid)) return "key_revoked";
      if (tokens.has(token.jti)) return "token_revoked";
      const sid = token.sessionId;
      if (sid !== undefined) {
        if (sessions.has(sid)) return "session_revoked";
        const v = versions.get(sid);
        if (v !== undefined && (token.sessionVersion ?? 0) < v.minVersion) return "session_revoked";
      }
      const issuedAtMs = token.issuedAt * 1000;
      const s = subjects.get(token.subject);
      if (s !== undefined && issuedAtMs < s.notBefore) return "subject_revoked";
      const c = clients.get(token.clientId);
      if (c !== undefined && issuedAtMs < c.notBefore) return "client_disabled";
      return null;
    },

    isStale(nowMs) {
      return freshAt === undefined || nowMs - freshAt > stalenessBoundMs;
    },

    reserve(entries) {
      // Most events are token revocations; a stream of sessions costs only an oversized empty table.
      tokens.reserve(entries);
    },

    markFresh(nowMs) {
      freshAt = nowMs;
    },

    prune(nowSeconds) {
      const limit = nowSeconds - graceSeconds;
      return (
        tokens.prune(limit) +
        sessions.prune(limit) +
        pruneMap(keys, limit) +
        pruneMap(versions, limit) +
        pruneMap(subjects, limit) +
        pruneMap(clients, limit)
      );
    },

    clear() {
      for (const index of [tokens, sessions, keys, versions, subjects, clients]) index.clear();
      freshAt = undefined;
    },

    get size() {
      return tokens.size + sessions.size + keys.size + versions.size + subjects.size + clients.size;
    },

    get freshAt() {
      return freshAt;
    },
  };
}
