import { recordAssertionJti } from "../sql/record-assertion-jti.ts";
import type { SqlExecutor } from "../store/sql-executor.ts";

/**
 * Remembers the `jti`s of private_key_jwt assertions until they expire. In Postgres, not in memory:
 * a per-replica memory would let the same assertion through once on every replica, and Redis is
 * optional while Postgres is always there; one small upsert per fresh assertion.
 */
export interface JtiReplayStore {
  /** True when this is the first use of `jti` by `clientId` within the assertion's life. */
  claim(clientId: string, jti: string, expiresAt: Date, now: Date): Promise<boolean>;
}

export function postgresJtiReplayStore(db: SqlExecutor): JtiReplayStore {
  return {
    async claim(clientId, jti, expiresAt, now) {
      const rows = await db.query(recordAssertionJti, [clientId, jti, expiresAt, now]);
      return rows.length === 1;
    },
  };
}
