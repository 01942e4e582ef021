import { accessSync, constants } from "node:fs";
import { Redis } from "ioredis";
import pg from "pg";
import { NGINX_BINARY } from "./nginx.ts";
import { PGBOUNCER_BINARY } from "./pgbouncer.ts";
import { HOW_TO_START, probe, REDIS_SENTINEL_BINARY, TEST_DATABASE_URL, TEST_REDIS_URL } from "./services.ts";

/**
 * Runs once before any test file. Integration tests need the real Postgres and Redis, and the guard's
 * differential tests a real nginx, the janitor's pooler test a real PgBouncer, the Sentinel tests a real
 * redis-sentinel; when one is missing the run stops here with one message saying how
 * to start or install it, instead of hundreds of timeouts.
 */
export default async function checkServices(): Promise<void> {
  const problems: string[] = [];
  const pgDown = await probe(TEST_DATABASE_URL, 5432);
  if (pgDown) {
    problems.push(`Postgres is not reachable (${pgDown}). Start it with:\n  ${HOW_TO_START.postgres}`);
  } else {
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.query("select 1");
    } catch (err) {
      problems.push(`Postgres answers but ${TEST_DATABASE_URL} is not usable: ${(err as Error).message}`);
    } finally {
      await client.end().catch(() => {});
    }
  }
  const redisDown = await probe(TEST_REDIS_URL, 6379);
  if (redisDown) {
    problems.push(`Redis is not reachable (${redisDown}). Start it with:\n  ${HOW_TO_START.redis}`);
  } else {
    const redis = new Redis(TEST_REDIS_URL, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      connectTimeout: 3000,
    });
    try {
      await redis.connect();
      await redis.ping();
    } catch (err) {
      problems.push(`Redis answers but ${TEST_REDIS_URL} is not usable: ${(err as Error).message}`);
    } finally {
      redis.disconnect();
    }
  }
  try {
    accessSync(NGINX_BINARY, constants.X_OK);
  } catch {
    problems.push(`nginx is not installed (${NGINX_BINARY}). Install it with:\n  ${HOW_TO_START.nginx}`);
  }
  try {
    accessSync(PGBOUNCER_BINARY, constants.X_OK);
  } catch {
    problems.push(
      `PgBouncer is not installed (${PGBOUNCER_BINARY}). Install it with:\n  ${HOW_TO_START.pgbouncer}`,
    );
  }
  try {
    accessSync(REDIS_SENTINEL_BINARY, constants.X_OK);
  } catch {
    problems.push(
      `redis-sentinel is not installed (${REDIS_SENTINEL_BINARY}). Install it with:\n  ${HOW_TO_START.redisSentinel}`,
    );
  }
  if (problems.length > 0) {
    throw new Error(`Integration tests need the real services on this machine.\n${problems.join("\n")}`);
  }
}
