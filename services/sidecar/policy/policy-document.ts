import { type Alias, type Document, isMap, isNode, isScalar, LineCounter, parseDocument, visit } from "yaml";

export interface PolicyProblem {
  /** 1-based; undefined when the position is unknown. */
  readonly line: number | undefined;
  readonly column: number | undefined;
  /** Where in the document, e.g. `rules[2].match.glob`; empty for the whole file. */
  readonly path: string;
  readonly message: string;
}

/** A policy file that cannot be used, with every problem found, each naming its line. */
export class PolicyError extends Error {
  override readonly name = "PolicyError";
  readonly filename: string;
  readonly problems: readonly PolicyProblem[];

  constructor(filename: string, problems: readonly PolicyProblem[]) {
    super(problems.map((p) => formatProblem(filename, p)).join("\n"));
    this.filename = filename;
    this.problems = problems;
  }
}

export function formatProblem(filename: string, p: PolicyProblem): string {
  const where = p.line === undefined ? filename : `${filename}:${p.line}:${p.column ?? 1}`;
  return `${where}: ${p.path === "" ? "" : `${p.path}: `}${p.message}`;
}

export type DocumentPath = readonly (string | number)[];

export interface PolicyDocument {
  readonly value: unknown;
  /** Line and column of the value at `path` (or of its key, with `key`), or of its nearest ancestor. */
  locate(path: DocumentPath, key?: boolean): { line: number; column: number } | undefined;
}

/**
 * Parses a policy file as JSON (`.json`, or text starting with `{`) or YAML, keeping positions.
 * JSON goes through `JSON.parse` first, for strict JSON syntax errors; then, like YAML, through the
 * `yaml` parser (JSON is YAML 1.2), which supplies node positions and refuses repeated keys.
 */
export function parsePolicyDocument(text: string, filename: string): PolicyDocument {
  const json = /\.json$/i.test(filename) || (!/\.ya?ml$/i.test(filename) && text.trimStart().startsWith("{"));
  if (json) {
    try {
      JSON.parse(text);
    } catch (err) {
      throw new PolicyError(filename, [jsonSyntaxProblem(text, err as Error)]);
    }
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new PolicyError(
      filename,
      doc.errors.map((e) => {
        const { line, col } = lineCounter.linePos(e.pos[0]);
        return { line, column: col, path: "", message: firstLine(e.message) };
      }),
    );
  }
  const at = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 }) as unknown;
  } catch (err) {
    // Aliases are only resolved here: one naming no anchor, or an alias bomb, throws a ReferenceError.
    throw new PolicyError(filename, [aliasProblem(doc, err as Error, at)]);
  }
  return {
    value,
    locate(path, key = false) {
      for (let depth = path.length; depth >= 0; depth--) {
        const prefix = path.slice(0, depth);
        if (key && depth === path.length && depth > 0) {
          const parent = doc.getIn(prefix.slice(0, -1), true);
          if (isMap(parent)) {
            const pair = parent.items.find(
              (p) => isScalar(p.key) && p.key.value === prefix[prefix.length - 1],
            );
            if (isNode(pair?.key) && pair.key.range) return at(pair.key.range[0]);
          }
        }
        const node = depth === 0 ? doc.contents : doc.getIn(prefix, true);
        if (isNode(node) && node.range) return at(node.range[0]);
      }
      return undefined;
    },
  };
}

/**
 * V8 reports most JSON errors "at position N", some (`Unexpected token 'x', "…" is not valid JSON`)
 * with no position; those are found by bisecting for the shortest prefix that fails for another
 * reason than ending early.
 */
function jsonSyntaxProblem(text: string, err: Error): PolicyProblem {
  const message = `invalid JSON: ${err.message.replace(/\s+/g, " ")}`;
  const position = /at position (\d+)/.exec(err.message);
  let offset = position ? Number(position[1]) : isEndOfInput(err) ? text.length : firstBadOffset(text);
  offset = Math.min(offset, text.length);
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return { line, column: offset - before.lastIndexOf("\n"), path: "", message };
}

function firstBadOffset(text: string): number {
  const failsInside = (length: number) => {
    try {
      JSON.parse(text.slice(0, length));
      return false;
    } catch (err) {
      return !isEndOfInput(err as Error, length);
    }
  };
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (failsInside(mid + 1)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Whether parsing failed only because the text ended (V8 says so in several ways). */
function isEndOfInput(err: Error, length?: number): boolean {
  if (/Unexpected end of JSON input|Unterminated string/.test(err.message)) return true;
  const position = /at position (\d+)/.exec(err.message);
  return length !== undefined && position !== null && Number(position[1]) >= length;
}

/** Where a failed alias expansion points: the first alias without an anchor, else the first alias. */
function aliasProblem(
  doc: Document,
  err: Error,
  at: (offset: number) => { line: number; column: number },
): PolicyProblem {
  let first: Alias | undefined;
  let unresolved: Alias | undefined;
  visit(doc, {
    Alias(_key, node) {
      first ??= node;
      if (node.resolve(doc) === undefined) {
        unresolved = node;
        return visit.BREAK;
      }
      return undefined;
    },
  });
  const range = (unresolved ?? first)?.range;
  return {
    ...(range ? at(range[0]) : { line: 1, column: 1 }),
    path: "",
    message: firstLine(err.message),
  };
}

function firstLine(message: string): string {
  return message.split("\n", 1)[0] ?? message;
}
