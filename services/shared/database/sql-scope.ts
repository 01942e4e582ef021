/**
 * What raw SQL needs to know about the database handle it runs on, fixed when the handle is made:
 * the schema every statement names its tables in, and whether statements may be named (prepared once
 * per server connection). Nothing here is sent at connect time, so the same pool works through a
 * transaction-pooling PgBouncer, which refuses start-up `options` and (before 1.21) named statements.
 *
 * The scope travels with the `pg.Pool` and the Prisma client `createDatabase` returns, so the many
 * places that build an executor from a pool need no extra argument.
 */
export interface SqlScope {
  /** Postgres schema holding Gatehouse's tables (`public` on PGlite). */
  readonly schema: string;
  /** Send hot-path statements by name (parsed and planned once per server connection). */
  readonly preparedStatements: boolean;
}

const scopes = new WeakMap<object, SqlScope>();

/** Records the scope of a pool or Prisma client; returns the handle for chaining. */
export function withSqlScope<T extends object>(handle: T, scope: SqlScope): T {
  scopes.set(handle, scope);
  return handle;
}

/** The scope recorded for `handle`. Throws when the handle was not made by `createDatabase`/`withSqlScope`. */
export function sqlScopeOf(handle: object): SqlScope {
  const scope = scopes.get(handle);
  if (scope === undefined) {
    throw new Error("database handle without a SQL scope: create it with createDatabase() or withSqlScope()");
  }
  return scope;
}
