import { assertSchemaName, quoteIdent } from "../../shared/database/postgres.ts";

/** Every table raw SQL touches, by its SQL name (prisma/schema.prisma `@@map`). */
const TABLE_NAMES = [
  "clients",
  "signing_keys",
  "refresh_keys",
  "sessions",
  "refresh_tokens",
  "subject_revocations",
  "revoked_access_tokens",
  "revocation_outbox",
  "audit_events",
  "client_assertion_jtis",
] as const;

type TableName = (typeof TABLE_NAMES)[number];

/**
 * The names a statement writes its tables as: each one qualified with the configured schema
 * (`"t_x".sessions`), so no statement depends on the connection's `search_path`; and the schema name
 * itself as a SQL string literal, for lock keys that must differ per schema.
 */
export type Tables = Record<TableName, string> & { readonly schemaLiteral: string };

function tablesIn(schema: string): Tables {
  const quoted = quoteIdent(assertSchemaName(schema));
  const tables = Object.fromEntries(TABLE_NAMES.map((name) => [name, `${quoted}.${name}`]));
  return { ...(tables as Record<TableName, string>), schemaLiteral: `'${schema}'` };
}

/**
 * One named SQL statement. Its text is built for a schema on first use and kept, so a process pays
 * for building each statement once. `name` makes it a prepared statement on each server connection
 * when the database handle allows (see SqlScope), so Postgres parses and plans it once per connection.
 */
export interface SqlStatement<Row> {
  readonly name: string;
  text(schema: string): string;
  /** Phantom field carrying the row type; never set. */
  readonly row?: Row;
}

export function sql<Row>(name: string, build: (t: Tables) => string): SqlStatement<Row> {
  const texts = new Map<string, string>();
  return {
    name,
    text(schema) {
      let text = texts.get(schema);
      if (text === undefined) {
        text = build(tablesIn(schema));
        texts.set(schema, text);
      }
      return text;
    },
  };
}
