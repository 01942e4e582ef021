import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GatehouseError } from "../../services/shared/errors/gatehouse-error.ts";
import { AUDIT_CURSOR } from "../../services/token/admin/audit-admin.ts";
import { CLIENT_CURSOR } from "../../services/token/admin/client-admin.ts";
import { type CursorPart, decodePageToken, encodePageToken } from "../../services/token/admin/page-cursor.ts";
import { SESSION_CURSOR } from "../../services/token/flows/list-sessions-flow.ts";

// Every listing's page-token shape: a new listing belongs here.
const LISTINGS: [string, readonly CursorPart[]][] = [
  ["ListSessions", SESSION_CURSOR],
  ["ListAuditEvents", AUDIT_CURSOR],
  ["ListClients", CLIENT_CURSOR],
];
const FILTERS = ["alice", null];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// Postgres timestamptz ends in 294276 AD, beyond the Date range, so any valid Date is storable.
const MAX_DATE = 8.64e15;

/** What the query built from a decoded position needs of each field. */
function usable(part: CursorPart, value: unknown): boolean {
  switch (part) {
    case "millis": {
      const t = new Date(value as number).getTime();
      return Number.isInteger(value) && Number.isFinite(t) && t >= 0 && t <= MAX_DATE;
    }
    case "uuid":
      return typeof value === "string" && UUID.test(value);
    case "serial":
      return typeof value === "bigint" && value >= 0n && value < 2n ** 63n;
    case "text":
      return typeof value === "string";
  }
}

const field = fc.oneof(
  fc.double(),
  fc.constantFrom(1e300, -1e300, 8.64e15 + 1, -1, 1.5, Number.MAX_SAFE_INTEGER, 1700000000000),
  fc.integer(),
  fc.uuid(),
  fc.string(),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map(String),
  fc.constantFrom("9223372036854775807", "9223372036854775808", "99999999999999999999", "00000000-0000"),
  fc.jsonValue(),
);
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v) ?? "").toString("base64url");
const tokens = fc.oneof(
  fc.string(),
  fc.string({ unit: "binary" }),
  fc.jsonValue().map(b64),
  // Right fingerprint, so the position itself is what gets judged.
  fc.array(field, { maxLength: 3 }).map((position) => encodePageToken(position as never, FILTERS)),
  fc.array(field, { maxLength: 3 }).map((position) => b64(position)),
);

describe("page tokens", () => {
  it.each(LISTINGS)("%s: any string decodes to a usable position or is invalid_request", (_name, shape) => {
    fc.assert(
      fc.property(tokens, (token) => {
        let position: unknown[];
        try {
          position = decodePageToken(token, FILTERS, shape) as unknown[];
        } catch (err) {
          expect(err).toBeInstanceOf(GatehouseError);
          expect((err as GatehouseError).code).toBe("invalid_request");
          expect((err as GatehouseError).metadata.field).toBe("page_token");
          return;
        }
        expect(position).toHaveLength(shape.length);
        for (const [i, part] of shape.entries()) {
          expect(usable(part, position[i]), `${part} ${position[i]}`).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("refuses [1e300, uuid], the ListSessions token that used to reach Postgres", () => {
    const token = encodePageToken([1e300, "00000000-0000-4000-8000-000000000000"], FILTERS);
    expect(() => decodePageToken(token, FILTERS, SESSION_CURSOR)).toThrow(
      expect.objectContaining({ code: "invalid_request" }),
    );
  });

  it("round-trips every position a listing issues", () => {
    const position = fc.tuple(
      fc.integer({ min: 0, max: MAX_DATE }),
      fc.uuid(),
      fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }),
    );
    fc.assert(
      fc.property(position, ([at, id, serial]) => {
        expect(decodePageToken(encodePageToken([at, id], FILTERS), FILTERS, SESSION_CURSOR)).toEqual([
          at,
          id,
        ]);
        expect(decodePageToken(encodePageToken([at, serial], FILTERS), FILTERS, AUDIT_CURSOR)).toEqual([
          at,
          serial,
        ]);
      }),
    );
  });
});
