import type { Logger } from "../../shared/logging/index.ts";
import type { AppendOptions, RevocationBus } from "../../shared/revocation/revocation-bus.ts";
import { encodeRevocationEntry } from "../../shared/revocation/revocation-entry.ts";
import { laterStreamId } from "../../shared/revocation/stream-id.ts";
import { markPublished } from "../sql/mark-published.ts";
import { type OutboxRow, outboxBatch } from "../sql/outbox-batch.ts";
import { tryRelayLock } from "../sql/relay-lock.ts";
import { relevantOutboxPage } from "../sql/relevant-outbox-page.ts";
import type { SqlExecutor } from "../store/sql-executor.ts";
import type { OutboxDb } from "./outbox-db.ts";
import { outboxRowToEvent } from "./outbox-event.ts";

/** What a relay pass works with; `lastAppended` carries over from pass to pass. */
export interface RelayPassContext {
  db: OutboxDb;
  bus: RevocationBus;
  stream: string;
  batchSize: number;
  log: Logger;
  /** The newest stream id this process appended. */
  lastAppended?: string | undefined;
}

export interface RelayPassOptions {
  /** Epoch ms: what counts as still relevant. */
  now: number;
  /** Also trim the stream to entries younger than this (ms, on the bus's clock). */
  trimMaxAgeMs?: number | undefined;
  /** Called as soon as entries are in the stream, before their rows are marked published. */
  onAppended?: ((eventIds: readonly string[], republished: boolean) => void) | undefined;
}

export interface RelayPassOutcome {
  /** False when another publisher held the lock: nothing was done. */
  locked: boolean;
  /** Entries appended, republished ones included. */
  published: number;
  /** Of them, appended by a republish after a reset. */
  republished: number;
  /** Rows that formed no valid event: marked published with no stream id, and logged. */
  invalid: number;
  /** The batch was full: more unpublished rows may be waiting. */
  more: boolean;
  /** The stream was missing or behind and was rebuilt from the outbox. */
  reset: boolean;
  trimmed: number;
}

/** A failure of one side of the relay, so metrics and logs can say which. */
export class RelayStageError extends Error {
  constructor(
    readonly stage: "redis" | "database",
    cause: unknown,
  ) {
    super(`${stage}: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
}

const onRedis = <T>(p: Promise<T>) =>
  p.catch((err: unknown) => {
    throw new RelayStageError("redis", err);
  });

const NOT_LOCKED: RelayPassOutcome = {
  locked: false,
  published: 0,
  republished: 0,
  invalid: 0,
  more: false,
  reset: false,
  trimmed: 0,
};

/**
 * One relay pass, in one transaction, under the relay lock: publish the next unpublished outbox rows in id order (one
 * atomic append that first checks the stream still holds the newest entry we know was published),
 * mark them published; when the check fails the stream was lost or reset, so republish every
 * still-relevant row from the outbox instead; optionally trim. Without the lock it does nothing.
 */
export async function relayPass(ctx: RelayPassContext, opts: RelayPassOptions): Promise<RelayPassOutcome> {
  // One transaction per pass: the lock and the rows marked published end together at COMMIT.
  return ctx.db.transaction(async (session) => {
    const [lock] = await session.query(tryRelayLock, []);
    if (!lock?.locked) return NOT_LOCKED;
    return lockedPass(ctx, session, opts);
  });
}

async function lockedPass(
  ctx: RelayPassContext,
  session: SqlExecutor,
  opts: RelayPassOptions,
): Promise<RelayPassOutcome> {
  const outcome = { ...NOT_LOCKED, locked: true };
  const rows = await session.query(outboxBatch, [ctx.batchSize, new Date(opts.now)]);
  const batch = rows.filter((r): r is typeof r & OutboxRow => r.id !== null);
  const expected = laterStreamId(rows[0]?.last_stream_id ?? undefined, ctx.lastAppended);
  outcome.more = batch.length >= ctx.batchSize;

  if (batch.length > 0 || expected !== undefined) {
    const check = expected === undefined ? {} : { ifIntactSince: expected };
    const appended = await appendRows(ctx, session, batch, check, opts, false);
    if (appended) {
      outcome.published = appended.published;
      outcome.invalid = appended.invalid;
    } else {
      ctx.log.warn(
        { stream: ctx.stream, expected },
        "revocation stream lost or behind; republishing every still-relevant event",
      );
      const again = await republish(ctx, session, opts);
      outcome.reset = true;
      outcome.published = outcome.republished = again.published;
      outcome.invalid = again.invalid;
      outcome.more = false;
    }
  }
  if (opts.trimMaxAgeMs !== undefined)
    outcome.trimmed = await onRedis(ctx.bus.trim(ctx.stream, opts.trimMaxAgeMs));
  return outcome;
}

/**
 * Appends the rows' events (invalid rows left out), then marks every row published. Null, with
 * nothing appended or marked, when the bus refused because the stream is not intact.
 */
async function appendRows(
  ctx: RelayPassContext,
  session: SqlExecutor,
  rows: readonly OutboxRow[],
  check: AppendOptions,
  opts: RelayPassOptions,
  republishing: boolean,
): Promise<{ published: number; invalid: number } | null> {
  const events = rows.map(outboxRowToEvent);
  const valid = events.filter((e) => e !== null);
  const ids = await onRedis(ctx.bus.append(ctx.stream, valid.map(encodeRevocationEntry), check));
  if (ids === null) return null;
  if (ids.length > 0) {
    ctx.lastAppended = ids.at(-1);
    opts.onAppended?.(
      valid.map((e) => e.id),
      republishing,
    );
  }
  if (rows.length === 0) return { published: 0, invalid: 0 };
  let next = 0;
  const streamIds = events.map((e, i) => {
    if (e !== null) return ids[next++]!;
    ctx.log.error(
      { outboxId: rows[i]!.id, eventId: rows[i]!.event_id, type: rows[i]!.type },
      "outbox row is not a valid revocation event; marked published without publishing it",
    );
    return null;
  });
  await session.query(markPublished, [rows.map((r) => r.id), streamIds, new Date(opts.now)]);
  return { published: ids.length, invalid: rows.length - valid.length };
}

/**
 * Rebuilds the stream from the outbox: every row still relevant, published or not, in id order, page
 * by page. The first page appends unconditionally (re-creating a missing stream); each later page
 * checks the stream still holds the previous one, and a second loss mid-way starts over (at most 3 times).
 */
async function republish(
  ctx: RelayPassContext,
  session: SqlExecutor,
  opts: RelayPassOptions,
): Promise<{ published: number; invalid: number }> {
  for (let attempt = 1; ; attempt++) {
    // What this process appended before belongs to the lost stream.
    ctx.lastAppended = undefined;
    let after = "0";
    let check: AppendOptions = {};
    let published = 0;
    let invalid = 0;
    let lost = false;
    for (;;) {
      const page = await session.query(relevantOutboxPage, [after, new Date(opts.now), ctx.batchSize]);
      if (page.length === 0) break;
      const done = await appendRows(ctx, session, page, check, opts, true);
      if (!done) {
        lost = true;
        break;
      }
      published += done.published;
      invalid += done.invalid;
      if (done.published > 0) check = { ifIntactSince: ctx.lastAppended! };
      after = page.at(-1)!.id;
    }
    if (!lost) {
      ctx.log.info(
        { stream: ctx.stream, republished: published },
        "revocation stream rebuilt from the outbox",
      );
      return { published, invalid };
    }
    if (attempt >= 3) throw new RelayStageError("redis", new Error("stream lost again while republishing"));
  }
}
