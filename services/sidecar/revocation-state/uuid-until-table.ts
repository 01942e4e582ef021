/**
 * A hash table from canonical UUID strings (lowercase, `8-4-4-4-12`, as `randomUUID()` makes them:
 * the token service's jtis and session ids) to an `until` in epoch seconds, held in typed arrays.
 *
 * Why not a `Map<string, number>`: a million revoked jtis as Map entries cost ~90 MB of JS heap
 * (a 56-byte string and a table slot each) that every major GC must mark, and while the map grows
 * the GC, not the inserts, dominated the bootstrap. Here a key is its 16 bytes, outside the JS heap,
 * with no per-entry object: ~40 MB at a million entries and nothing for the GC to trace.
 *
 * Open addressing with linear probing; deletion by backward shift, so there are no tombstones and
 * lookups stay short after pruning. A slot is empty when its `until` is 0 (stored untils are at
 * least 1). Strings that are not canonical UUIDs are refused (`set` returns false): callers keep
 * those in a Map.
 */
const MIN_CAPACITY = 1024;
/** Grow past this load; linear probing stays short below it. */
const MAX_LOAD = 0.7;
/** Words per slot: until, then the key's four words. */
const W = 5;

export interface UuidUntilTable {
  /** Raises the entry's until to `until` (merge by maximum); false if `id` is not a canonical UUID. */
  set(id: string, until: number): boolean;
  /** The entry's until, or undefined (also for a non-UUID `id`). */
  get(id: string): number | undefined;
  /** Makes room for `entries` entries in all, so filling up to that many never rehashes. */
  reserve(entries: number): void;
  /** Drops entries whose until is below `limit`; returns how many. */
  prune(limit: number): number;
  clear(): void;
  readonly size: number;
}

export function createUuidUntilTable(): UuidUntilTable {
  let capacity = MIN_CAPACITY;
  let mask = capacity - 1;
  // One slot = [until, key word 0..3]: probing reads one place in memory, not two arrays.
  let slots = new Uint32Array(capacity * W);
  let size = 0;
  /** The parsed key of the last `parse` call (one shared buffer: no allocation per lookup). */
  const k = new Uint32Array(4);

  const slotOf = (a: number, b: number, c: number, d: number) => {
    // UUIDv4 bits are random, but v7 and others start with a clock: mix all four words.
    let h = Math.imul(a ^ (b >>> 15), 0x85ebca6b) ^ Math.imul(c ^ (d >>> 13), 0xc2b2ae35);
    h ^= h >>> 16;
    return h & mask;
  };
  const find = (a: number, b: number, c: number, d: number) => {
    let i = slotOf(a, b, c, d);
    for (;;) {
      const o = i * W;
      if (slots[o] === 0) return -1 - i;
      if (slots[o + 1] === a && slots[o + 2] === b && slots[o + 3] === c && slots[o + 4] === d) return i;
      i = (i + 1) & mask;
    }
  };
  const place = (a: number, b: number, c: number, d: number, until: number) => {
    const o = (-1 - find(a, b, c, d)) * W;
    slots[o] = until;
    slots[o + 1] = a;
    slots[o + 2] = b;
    slots[o + 3] = c;
    slots[o + 4] = d;
  };
  const resize = (newCapacity: number) => {
    const old = slots;
    capacity = newCapacity;
    mask = capacity - 1;
    slots = new Uint32Array(capacity * W);
    for (let o = 0; o < old.length; o += W) {
      const u = old[o]!;
      if (u !== 0) place(old[o + 1]!, old[o + 2]!, old[o + 3]!, old[o + 4]!, u);
    }
  };
  /** Empties slot `i` and shifts later members of its cluster back, so no probe chain breaks. */
  const removeAt = (i: number) => {
    let hole = i;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const o = j * W;
      if (slots[o] === 0) break;
      const home = slotOf(slots[o + 1]!, slots[o + 2]!, slots[o + 3]!, slots[o + 4]!);
      // Move j into the hole unless its home lies cyclically in (hole, j].
      if (hole <= j ? home > hole && home <= j : home > hole || home <= j) continue;
      slots.copyWithin(hole * W, o, o + W);
      hole = j;
    }
    slots[hole * W] = 0;
    size--;
  };

  return {
    set(id, until) {
      if (!parseUuid(id, k)) return false;
      const stored = Math.min(0xffffffff, Math.max(1, Math.floor(until)));
      const i = find(k[0]!, k[1]!, k[2]!, k[3]!);
      if (i >= 0) {
        if (slots[i * W]! < stored) slots[i * W] = stored;
        return true;
      }
      if (size + 1 > capacity * MAX_LOAD) resize(capacity * 2);
      place(k[0]!, k[1]!, k[2]!, k[3]!, stored);
      size++;
      return true;
    },
    get(id) {
      if (!parseUuid(id, k)) return undefined;
      const i = find(k[0]!, k[1]!, k[2]!, k[3]!);
      return i >= 0 ? slots[i * W] : undefined;
    },
    reserve(entries) {
      let c = capacity;
      while (entries > c * MAX_LOAD) c *= 2;
      if (c > capacity) resize(c);
    },
    prune(limit) {
      let removed = 0;
      // A removal can shift a later entry into slot i, so slot i is looked at again before moving on;
      // entries only ever move backwards, so none is skipped.
      for (let i = 0; i < capacity; ) {
        const u = slots[i * W]!;
        if (u !== 0 && u < limit) {
          removeAt(i);
          removed++;
        } else i++;
      }
      if (capacity > MIN_CAPACITY && size < capacity * MAX_LOAD * 0.25) {
        let c = MIN_CAPACITY;
        while (size + 1 > c * MAX_LOAD * 0.5) c *= 2;
        resize(c);
      }
      return removed;
    },
    clear() {
      capacity = MIN_CAPACITY;
      mask = capacity - 1;
      slots = new Uint32Array(capacity * W);
      size = 0;
    },
    get size() {
      return size;
    },
  };
}

/** Hex digit value of a lowercase hex char code, or -1. */
const hex = (c: number) => (c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1);

/**
 * Parses a canonical lowercase UUID into four 32-bit words; false for anything else (upper case
 * included: a jti is compared as an exact string, so "ABC…" and "abc…" are different tokens).
 */
export function parseUuid(s: string, out: Uint32Array): boolean {
  if (s.length !== 36) return false;
  let word = 0;
  let acc = 0;
  let digits = 0;
  for (let i = 0; i < 36; i++) {
    const c = s.charCodeAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 45) return false;
      continue;
    }
    const v = hex(c);
    if (v < 0) return false;
    acc = (acc << 4) | v;
    if (++digits === 8) {
      out[word++] = acc >>> 0;
      acc = 0;
      digits = 0;
    }
  }
  return true;
}
