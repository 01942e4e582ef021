/**
 * A Postgres storage adapter for oidc-provider, for the peer benchmark only: one table per model in
 * a bench-only schema (the shape of oidc-provider's own example adapters), each operation one
 * statement on a shared `pg` pool. Without it oidc-provider keeps tokens in an in-process LRU map,
 * which is not comparable with Gatehouse's Postgres store.
 */
import pg from "pg";

/** The storage contract oidc-provider calls (see its documentation, "adapter"). */
interface OidcAdapter {
  upsert(id: string, payload: Record<string, unknown>, expiresIn: number | undefined): Promise<void>;
  find(id: string): Promise<Record<string, unknown> | undefined>;
  findByUserCode(userCode: string): Promise<Record<string, unknown> | undefined>;
  findByUid(uid: string): Promise<Record<string, unknown> | undefined>;
  consume(id: string): Promise<void>;
  destroy(id: string): Promise<void>;
  revokeByGrantId(grantId: string): Promise<void>;
}

const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** Creates `schema` and returns an adapter class over it; `close` ends the pool. */
export async function createPgAdapter(url: string, schema: string, poolSize: number) {
  const pool = new pg.Pool({ connectionString: url, max: poolSize });
  await pool.query(`CREATE SCHEMA IF NOT EXISTS ${ident(schema)}`);
  const created = new Set<string>();

  /** The table of one model, created on first use (models are few and known only at run time). */
  const table = async (model: string) => {
    const name = `${ident(schema)}.${ident(model.toLowerCase())}`;
    if (!created.has(model)) {
      await pool.query(
        `CREATE TABLE IF NOT EXISTS ${name} (
           id text PRIMARY KEY, payload jsonb NOT NULL, grant_id text, user_code text, uid text,
           expires_at timestamptz, consumed_at timestamptz)`,
      );
      await pool.query(`CREATE INDEX IF NOT EXISTS ${ident(`${model}_grant`)} ON ${name} (grant_id)`);
      created.add(model);
    }
    return name;
  };

  const live = "(expires_at IS NULL OR expires_at > now())";
  /** The live row whose `column` (a fixed column name, never input) equals `value`, as oidc-provider wants it. */
  const findWhere = async (model: string, column: "id" | "user_code" | "uid", value: string) => {
    const r = await pool.query(
      `SELECT payload, consumed_at IS NOT NULL AS consumed FROM ${await table(model)} WHERE ${column} = $1 AND ${live}`,
      [value],
    );
    const row = r.rows[0] as { payload: Record<string, unknown>; consumed: boolean } | undefined;
    if (!row) return undefined;
    return row.consumed ? { ...row.payload, consumed: true } : row.payload;
  };

  class PgAdapter implements OidcAdapter {
    constructor(private readonly model: string) {}

    async upsert(id: string, payload: Record<string, unknown>, expiresIn: number | undefined) {
      await pool.query(
        `INSERT INTO ${await table(this.model)} (id, payload, grant_id, user_code, uid, expires_at)
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
         ON CONFLICT (id) DO UPDATE SET payload = excluded.payload, expires_at = excluded.expires_at`,
        [
          id,
          payload,
          payload.grantId ?? null,
          payload.userCode ?? null,
          payload.uid ?? null,
          expiresIn ?? null,
        ],
      );
    }
    find(id: string) {
      return findWhere(this.model, "id", id);
    }
    findByUserCode(userCode: string) {
      return findWhere(this.model, "user_code", userCode);
    }
    findByUid(uid: string) {
      return findWhere(this.model, "uid", uid);
    }
    async consume(id: string) {
      await pool.query(`UPDATE ${await table(this.model)} SET consumed_at = now() WHERE id = $1`, [id]);
    }
    async destroy(id: string) {
      await pool.query(`DELETE FROM ${await table(this.model)} WHERE id = $1`, [id]);
    }
    async revokeByGrantId(grantId: string) {
      await pool.query(`DELETE FROM ${await table(this.model)} WHERE grant_id = $1`, [grantId]);
    }
  }

  return { Adapter: PgAdapter, close: () => pool.end() };
}
