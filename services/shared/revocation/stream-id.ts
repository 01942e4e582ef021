/**
 * Redis stream entry ids, `<ms>-<seq>`: the time the entry was added on the stream's own clock and a
 * sequence within that millisecond. Both buses generate them the same way, so the relay and the
 * followers can compare positions without knowing which bus they talk to.
 */

/** Before every entry: reading after it reads the whole stream. */
export const STREAM_START = "0-0";

export interface ParsedStreamId {
  ms: number;
  seq: number;
}

const ID = /^(\d{1,16})-(\d{1,16})$/;

/** Parses `<ms>-<seq>`; undefined for anything else. */
export function parseStreamId(id: string): ParsedStreamId | undefined {
  const m = ID.exec(id);
  if (!m) return undefined;
  return { ms: Number(m[1]), seq: Number(m[2]) };
}

/** Orders two stream ids like Redis does; an id that does not parse sorts before every valid one. */
export function compareStreamIds(a: string, b: string): number {
  if (a === b) return 0;
  const pa = parseStreamId(a);
  const pb = parseStreamId(b);
  if (!pa || !pb) return pa ? 1 : pb ? -1 : 0;
  return pa.ms - pb.ms || pa.seq - pb.seq;
}

/** The later of two ids (either may be undefined). */
export function laterStreamId(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return compareStreamIds(a, b) >= 0 ? a : b;
}
