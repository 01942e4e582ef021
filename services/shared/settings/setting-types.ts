import { isIP } from "node:net";
import { z } from "zod";
import { isPlaceholderMasterKey, MASTER_KEY_HOWTO } from "./placeholder-master-keys.ts";

/**
 * Value kinds used by settings, as zod schemas from the raw string a user wrote in the environment or
 * on the command line. Messages complete the sentence "<NAME>: ..." — the loader adds the name.
 */

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "500ms", "30s", "10m", "1h", "14d"; a bare number means seconds. Parses to milliseconds. */
export function duration(bounds: { minMs?: number; maxMs?: number } = {}) {
  return z
    .string()
    .trim()
    .regex(DURATION, { error: "expected a duration such as 30s, 10m, 1h or 14d" })
    .transform((s) => {
      const m = DURATION.exec(s)!;
      return Math.round(Number(m[1]) * UNIT_MS[m[2] ?? "s"]!);
    })
    .pipe(
      z
        .number()
        .min(bounds.minMs ?? 0, { error: `must be at least ${bounds.minMs ?? 0} ms` })
        .max(bounds.maxMs ?? Number.MAX_SAFE_INTEGER, { error: `must be at most ${bounds.maxMs} ms` }),
    );
}

export function integer(min: number, max: number) {
  return z
    .string()
    .trim()
    .regex(/^-?\d+$/, { error: "expected an integer" })
    .transform(Number)
    .pipe(
      z
        .number()
        .min(min, { error: `must be ${min} or more` })
        .max(max, { error: `must be ${max} or less` }),
    );
}

/** "host:port", ":port" or "port"; an empty host listens on all interfaces. */
export function listenAddress() {
  return z
    .string()
    .trim()
    .regex(/^(?:(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]*):)?\d{1,5}$/, {
      error: "expected host:port, :port or port",
    })
    .transform((s, ctx) => {
      const i = s.lastIndexOf(":");
      const host = i === -1 ? "" : s.slice(0, i).replace(/^\[(.*)\]$/, "$1");
      const port = Number(i === -1 ? s : s.slice(i + 1));
      if (port > 65535) {
        ctx.addIssue({ code: "custom", message: `port ${port} is out of range (0-65535)` });
        return z.NEVER;
      }
      return { host: host === "" ? "0.0.0.0" : host, port };
    });
}

export function boolean() {
  return z
    .string()
    .trim()
    .toLowerCase()
    .pipe(z.enum(["1", "true", "yes", "on", "0", "false", "no", "off"], { error: "expected true or false" }))
    .transform((s) => ["1", "true", "yes", "on"].includes(s));
}

/** A URL with one of the given schemes, kept exactly as written (issuers compare as strings). */
export function url(protocols: readonly string[]) {
  return z
    .string()
    .trim()
    .superRefine((s, ctx) => {
      if (!URL.canParse(s)) {
        ctx.addIssue({ code: "custom", message: `expected a URL (${protocols.join(", ")})` });
      } else if (!protocols.includes(new URL(s).protocol.replace(/:$/, ""))) {
        ctx.addIssue({ code: "custom", message: `expected a ${protocols.join(" or ")} URL` });
      }
    });
}

/**
 * Comma-separated `host:port` addresses (IPv6 hosts in brackets), blanks dropped; a bare host gets
 * `defaultPort`. Parses to `{ host, port }` pairs.
 */
export function hostPorts(defaultPort: number) {
  return list().transform((items, ctx) => {
    const out: { host: string; port: number }[] = [];
    for (const item of items) {
      const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(item);
      const port = m?.[2] === undefined ? defaultPort : Number(m[2]);
      if (!m || port < 1 || port > 65535) {
        ctx.addIssue({ code: "custom", message: `expected host:port, got ${item}` });
        return z.NEVER;
      }
      out.push({ host: m[1]!.replace(/^\[(.*)\]$/, "$1"), port });
    }
    return out;
  });
}

/** Comma-separated list, blanks dropped. */
export function list() {
  return z.string().transform((s) =>
    s
      .split(",")
      .map((x) => x.trim())
      .filter((x) => x !== ""),
  );
}

export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z
    .string()
    .trim()
    .pipe(z.enum(values, { error: `expected one of ${values.join(", ")}` }));
}

export function text() {
  return z.string().trim().min(1, { error: "must not be empty" });
}

/** A 32-byte key written as base64 or base64url. */
export function key32() {
  return z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9+/_-]+={0,2}$/, { error: "expected 32 bytes in base64" })
    .transform((s) => Buffer.from(s.replace(/-/g, "+").replace(/_/g, "/"), "base64"))
    .refine((k) => k.length === 32, { error: "expected exactly 32 bytes in base64" });
}

/**
 * A master key for real data: 32 bytes in base64 that are not a published example or degenerate key.
 * Only `gatehouse dev`, whose data is throwaway, reads GATEHOUSE_MASTER_KEY with plain {@link key32}.
 */
export function masterKey() {
  return key32().refine((k) => !isPlaceholderMasterKey(k), {
    error: `is a published placeholder or degenerate key, refused outside gatehouse dev; ${MASTER_KEY_HOWTO}`,
  });
}

/** Comma-separated IPv4/IPv6 addresses or CIDR ranges (`10.0.0.0/8`, `fd00::/8`), blanks dropped. */
export function ipRanges() {
  return list().superRefine((ranges, ctx) => {
    for (const range of ranges) {
      const [address = "", prefix, extra] = range.split("/");
      const family = isIP(address);
      const bits = family === 4 ? 32 : 128;
      const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= bits);
      if (family === 0 || !prefixOk || extra !== undefined) {
        ctx.addIssue({ code: "custom", message: `expected an IP address or CIDR range, got ${range}` });
      }
    }
  });
}
