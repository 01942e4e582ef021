import { z } from "zod";
import type { BucketLimit } from "./token-bucket.ts";

/** `off`, or a rate limit: what an operator writes in `GATEHOUSE_RATE_LIMIT_*`. */
export type RateLimit = BucketLimit | "off";

const RATE = /^(\d+(?:\.\d+)?)(?:\/(\d+))?$/;

/**
 * `RATE/BURST` (calls per second per client, and how many may come at once after a quiet spell),
 * `RATE` alone (burst = rate, at least 1), or `off`. For a setting's schema.
 */
export function rateLimitSetting() {
  return z
    .string()
    .trim()
    .toLowerCase()
    .transform((s, ctx): RateLimit => {
      if (s === "off") return "off";
      const m = RATE.exec(s);
      const rate = m ? Number(m[1]) : Number.NaN;
      const burst = m?.[2] !== undefined ? Number(m[2]) : Math.max(1, Math.ceil(rate));
      if (
        !(rate > 0 && rate <= 1_000_000) ||
        !(Number.isSafeInteger(burst) && burst >= 1 && burst <= 1_000_000)
      ) {
        ctx.addIssue({
          code: "custom",
          message: "expected RATE/BURST (calls per second per client / largest burst, e.g. 200/400) or off",
        });
        return z.NEVER;
      }
      return Object.freeze({ ratePerSecond: rate, burst });
    });
}

/** A positive integer, or `off` (no limit). For a setting's schema. */
export function limitOrOff() {
  return z
    .string()
    .trim()
    .toLowerCase()
    .transform((s, ctx): number | "off" => {
      if (s === "off") return "off";
      const n = /^\d+$/.test(s) ? Number(s) : Number.NaN;
      if (!(Number.isSafeInteger(n) && n >= 1 && n <= 1_000_000)) {
        ctx.addIssue({ code: "custom", message: "expected a whole number of at least 1, or off" });
        return z.NEVER;
      }
      return n;
    });
}
