// Prisma 7 CLI configuration (`prisma generate`, `prisma validate`, `prisma format`). Migrations are
// applied by our own offline runner (services/shared/database/migrate.ts, `gatehouse migrate`), not by
// `prisma migrate`, which needs the native schema engine that cannot be downloaded here.
import { defineConfig } from "prisma/config";

const url = process.env.DATABASE_URL;

export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  // Optional: only CLI commands that talk to a database need it; `prisma generate` does not.
  ...(url ? { datasource: { url } } : {}),
});
