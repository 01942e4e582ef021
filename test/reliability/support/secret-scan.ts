/**
 * Finding leaked secrets in log text. Pure: the log check feeds it the secrets and logs of a run.
 *
 * A secret is looked for as a whole and by its secret parts: the random body of a prefixed token
 * (`gthr_…`, `gths_…`), the payload and signature segments of a JWT (its header is the same for every
 * token and public). Log text is cut into runs of token characters and every window of a needle's
 * length is looked up, so a secret glued to other characters is found too.
 */

const MIN_NEEDLE = 16;
const TOKEN_RUN = /[A-Za-z0-9+/=._-]+/g;
const PREFIXED = /^([a-z]{2,8}_)([A-Za-z0-9_-]{16,})$/;

/** What to look for in logs for one secret: the whole of it and its secret parts. */
export function needlesOf(secret: string): string[] {
  const needles = new Set<string>([secret]);
  const prefixed = PREFIXED.exec(secret);
  if (prefixed) needles.add(prefixed[2]!);
  const parts = secret.split(".");
  if (parts.length === 3 && parts.every((p) => /^[A-Za-z0-9_-]+$/.test(p))) {
    needles.add(parts[1]!);
    needles.add(parts[2]!);
  }
  return [...needles].filter((n) => n.length >= MIN_NEEDLE);
}

export interface Leak {
  /** Which captured log (a file name). */
  source: string;
  lineNumber: number;
  /** The line, with the secret itself masked so the report does not repeat the leak. */
  line: string;
  /** The needle's length and first characters, enough to tell which secret it was. */
  what: string;
}

export class SecretIndex {
  private readonly byLength = new Map<number, Set<string>>();
  private count = 0;

  add(secret: string): void {
    for (const n of needlesOf(secret)) {
      let set = this.byLength.get(n.length);
      if (!set) {
        set = new Set();
        this.byLength.set(n.length, set);
      }
      if (!set.has(n)) {
        set.add(n);
        this.count++;
      }
    }
  }

  get size(): number {
    return this.count;
  }

  /** The needles found in one line (each once). */
  find(line: string): string[] {
    const found = new Set<string>();
    for (const match of line.matchAll(TOKEN_RUN)) {
      const run = match[0];
      if (run.length < MIN_NEEDLE) continue;
      for (const [length, set] of this.byLength) {
        for (let i = 0; i + length <= run.length; i++) {
          const window = run.slice(i, i + length);
          if (set.has(window)) found.add(window);
        }
      }
    }
    return [...found];
  }

  /** Every leak in a log text. */
  scan(source: string, text: string): Leak[] {
    const leaks: Leak[] = [];
    const lines = text.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      for (const needle of this.find(line)) {
        leaks.push({
          source,
          lineNumber: i + 1,
          line: line.replaceAll(needle, "<SECRET>").slice(0, 300),
          what: `${needle.length} chars, starting ${needle.slice(0, 6)}…`,
        });
      }
    }
    return leaks;
  }
}
