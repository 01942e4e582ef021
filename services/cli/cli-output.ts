import { type DescMessage, type MessageShape, toJson } from "@bufbuild/protobuf";
import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";

/**
 * What admin commands print: aligned tables for people, `--json` for scripts. JSON is the proto3
 * JSON form of the RPC's response (every field present), so a script sees what the API returns.
 */
export interface Output {
  json: boolean;
  out: (text: string) => void;
  err: (text: string) => void;
}

export function outputFor(json: boolean | undefined): Output {
  return {
    json: json === true,
    out: (text) => process.stdout.write(text.endsWith("\n") ? text : `${text}\n`),
    err: (text) => process.stderr.write(text.endsWith("\n") ? text : `${text}\n`),
  };
}

export function printMessage<S extends DescMessage>(
  output: Output,
  schema: S,
  message: MessageShape<S>,
): void {
  output.out(JSON.stringify(toJson(schema, message, { alwaysEmitImplicit: true }), null, 2));
}

export function printJson(output: Output, value: unknown): void {
  output.out(JSON.stringify(value, null, 2));
}

/** Columns padded to the widest cell; the last column is not padded. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

/** `key: value` lines with the keys aligned, for one object. */
export function fields(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${v}`.trimEnd()).join("\n");
}

/** A timestamp as UTC without milliseconds, or "-" when unset. */
export function when(t: Timestamp | undefined): string {
  if (!t) return "-";
  return new Date(timestampMs(t)).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Seconds as the largest whole unit: 600 → "10m", 1209600 → "14d". */
export function span(seconds: number): string {
  for (const [unit, size] of [
    ["d", 86_400],
    ["h", 3600],
    ["m", 60],
  ] as const) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}
