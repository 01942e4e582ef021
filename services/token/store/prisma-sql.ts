import type { Prisma } from "../../gen/prisma/client.ts";
import type { SqlScope } from "../../shared/database/sql-scope.ts";
import type { SqlStatement } from "../sql/statement.ts";

/**
 * Runs one of our statements through Prisma (inside an interactive transaction, where cold paths need
 * raw SQL beside model calls). Prisma sends it unnamed; `scope` (of the root client, see sqlScopeOf)
 * gives the schema its tables are named in.
 */
export function prismaQuery<Row>(
  db: Pick<Prisma.TransactionClient, "$queryRawUnsafe">,
  scope: SqlScope,
  statement: SqlStatement<Row>,
  ...params: unknown[]
): Promise<Row[]> {
  return db.$queryRawUnsafe<Row[]>(statement.text(scope.schema), ...params);
}
