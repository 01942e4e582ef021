/**
 * Does group commit pay for Refresh? A bench-only experiment at the SQL level, on the one-row session
 * design of shared/notes/refresh-storage.md: the session row carries its generation and the hash of
 * its current refresh token, and a rotation is one guarded UPDATE of that row. Measured two ways at the
 * same concurrency, back to back:
 * - single: one UPDATE per rotation (one round trip, one commit each);
 * - batched: the service's group commit (services/token/store/group-commit.ts, its defaults: one
 *   statement running; whatever queued meanwhile goes together as one UPDATE … FROM unnest(…) of up
 *   to 64 rows, one commit for all). unnest of parallel arrays is UPDATE … FROM (VALUES …) with one
 *   prepared statement whatever the group's size.
 * The table lives in the caller's schema and goes with it.
 */
import { createHash, randomBytes } from "node:crypto";
import pg from "pg";
import { createGroupCommit } from "../../services/token/store/group-commit.ts";
import { percentile } from "./bench-results.ts";
import { backendPids } from "./pg-table-stats.ts";
import { cpuBetween, cpuSnapshot, postgresPids } from "./process-cpu.ts";

const DAY_MS = 86_400_000;

const SINGLE = {
  name: "gc_rotate_one",
  text: `UPDATE gc_sessions
            SET generation = generation + 1, previous_hash = current_hash, current_hash = $4::bytea,
                last_used_at = $5::timestamptz, idle_expires_at = LEAST($6::timestamptz, expires_at)
          WHERE id = $1::uuid AND generation = $2::int AND current_hash = $3::bytea
            AND revoked_at IS NULL AND expires_at > $5::timestamptz AND idle_expires_at > $5::timestamptz
         RETURNING id::text, generation, subject, scopes, audience`,
};

const BATCHED = {
  name: "gc_rotate_many",
  text: `UPDATE gc_sessions s
            SET generation = s.generation + 1, previous_hash = s.current_hash, current_hash = v.successor,
                last_used_at = $5::timestamptz, idle_expires_at = LEAST($6::timestamptz, s.expires_at)
           FROM unnest($1::uuid[], $2::int[], $3::bytea[], $4::bytea[]) AS v(id, generation, presented, successor)
          WHERE s.id = v.id AND s.generation = v.generation AND s.current_hash = v.presented
            AND s.revoked_at IS NULL AND s.expires_at > $5::timestamptz AND s.idle_expires_at > $5::timestamptz
         RETURNING s.id::text, s.generation, s.subject, s.scopes, s.audience`,
};

interface Rotation {
  id: string;
  generation: number;
  presented: Buffer;
  successor: Buffer;
}

type Rotate = (r: Rotation) => Promise<boolean>;

const sha256 = (s: string | Buffer) => createHash("sha256").update(s).digest();
const sessionId = (i: number) => `00000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`;

function single(pool: pg.Pool): Rotate {
  return async (r) => {
    const now = new Date();
    const res = await pool.query({
      ...SINGLE,
      values: [r.id, r.generation, r.presented, r.successor, now, new Date(now.getTime() + DAY_MS)],
    });
    return res.rowCount === 1;
  };
}

/** The service's group commit (group-commit.ts) over this table's statements. */
function batched(pool: pg.Pool): Rotate {
  return createGroupCommit<Rotation, boolean>({
    key: (r) => r.id,
    one: single(pool),
    async many(group) {
      const now = new Date();
      const res = await pool.query({
        ...BATCHED,
        values: [
          group.map((r) => r.id),
          group.map((r) => r.generation),
          group.map((r) => r.presented),
          group.map((r) => r.successor),
          now,
          new Date(now.getTime() + DAY_MS),
        ],
      });
      const rotated = new Set(res.rows.map((row: { id: string }) => row.id));
      return group.map((r) => rotated.has(r.id));
    },
  });
}

export interface RotationRun {
  perSecond: number;
  p99: number;
  /** CPU µs per rotation: every postgres process; the backends of this pool only; this (client) process. */
  dbCpuUs: number;
  ownBackendsCpuUs: number;
  clientCpuUs: number;
}

/** Each session's current generation and token hash, as the callers know them (none: as preloaded). */
type Known = Map<number, { generation: number; hash: Buffer }>;

async function run(
  admin: pg.Client,
  applicationName: string,
  rotate: Rotate,
  state: Known,
  { sessions, concurrency, durationMs }: Pick<GroupCommitOptions, "sessions" | "concurrency" | "durationMs">,
): Promise<RotationRun> {
  const perCaller = Math.floor(sessions / concurrency);
  const latencies: number[] = [];
  let calls = 0;
  const own = await backendPids(admin, applicationName);
  const [pg0, own0, client0] = [cpuSnapshot(postgresPids()), cpuSnapshot(own), process.cpuUsage()];
  const end = performance.now() + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, c) => {
      while (performance.now() < end) {
        const i = c + concurrency * Math.floor(Math.random() * perCaller);
        const s = state.get(i) ?? { generation: 1, hash: sha256(`gc${i}`) };
        const successor = sha256(randomBytes(32));
        const t0 = performance.now();
        const ok = await rotate({ id: sessionId(i), generation: s.generation, presented: s.hash, successor });
        if (!ok) throw new Error(`rotation of session ${i} refused`);
        latencies.push(performance.now() - t0);
        state.set(i, { generation: s.generation + 1, hash: successor });
        calls++;
      }
    }),
  );
  const client = process.cpuUsage(client0);
  const dbCpu = cpuBetween(pg0, cpuSnapshot(postgresPids()));
  const ownCpu = cpuBetween(own0, cpuSnapshot(await backendPids(admin, applicationName)));
  latencies.sort((a, b) => a - b);
  return {
    perSecond: calls / (durationMs / 1000),
    p99: percentile(latencies, 99),
    dbCpuUs: dbCpu / calls,
    ownBackendsCpuUs: ownCpu / calls,
    clientCpuUs: (client.user + client.system) / calls,
  };
}

export interface GroupCommitOptions {
  url: string;
  /** An existing schema the caller drops afterwards. */
  schema: string;
  sessions: number;
  concurrency: number;
  durationMs: number;
}

export async function compareGroupCommit(
  o: GroupCommitOptions,
): Promise<{ single: RotationRun; batched: RotationRun }> {
  const applicationName = `${o.schema}_gc_${randomBytes(2).toString("hex")}`;
  const url = new URL(o.url);
  url.searchParams.set("application_name", applicationName);
  const pool = new pg.Pool({
    connectionString: url.toString(),
    max: o.concurrency,
    options: `-c search_path="${o.schema}"`,
  });
  const admin = new pg.Client({ connectionString: o.url });
  await admin.connect();
  try {
    await pool.query(`CREATE TABLE gc_sessions (
      id uuid PRIMARY KEY, subject text NOT NULL, client_id text NOT NULL, scopes text[] NOT NULL,
      audience text[] NOT NULL, generation int NOT NULL, current_hash bytea NOT NULL, previous_hash bytea,
      created_at timestamptz NOT NULL, last_used_at timestamptz NOT NULL,
      idle_expires_at timestamptz NOT NULL, expires_at timestamptz NOT NULL, revoked_at timestamptz)`);
    await pool.query("CREATE INDEX ON gc_sessions (subject, created_at DESC)");
    await pool.query("CREATE INDEX ON gc_sessions (client_id)");
    await pool.query(
      `INSERT INTO gc_sessions (id, subject, client_id, scopes, audience, generation, current_hash,
                                created_at, last_used_at, idle_expires_at, expires_at)
       SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, 'gc-' || i, 'bench',
              '{orders:read}', '{orders}', 1, sha256(convert_to('gc' || i, 'UTF8')),
              now(), now(), now() + interval '30 days', now() + interval '60 days'
         FROM generate_series(0, $1::int - 1) AS i`,
      [o.sessions],
    );
    await pool.query("VACUUM ANALYZE gc_sessions");
    // Every connection open from the start, so each run counts the same backends.
    await Promise.all(Array.from({ length: o.concurrency }, () => pool.query("SELECT pg_sleep(0.01)")));
    const known: Known = new Map();
    const singleRun = await run(admin, applicationName, single(pool), known, o);
    const batchedRun = await run(admin, applicationName, batched(pool), known, o);
    return { single: singleRun, batched: batchedRun };
  } finally {
    await pool.end();
    await admin.end();
  }
}
