import { randomBytes } from "node:crypto";
import {
  create,
  type DescField,
  type DescMessage,
  type DescMethodUnary,
  type DescService,
  fromBinary,
  toBinary,
} from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../services/gen/proto/gatehouse/v1/admin_service_pb.ts";
import { TokenService } from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import { ErrorInfoSchema } from "../../services/gen/proto/google/rpc/error_details_pb.ts";
import { StatusSchema } from "../../services/gen/proto/google/rpc/status_pb.ts";
import { isGatehouseErrorCode } from "../../services/shared/errors/codes.ts";
import { STATUS_BY_CODE } from "../../services/shared/errors/status-map.ts";
import { createLogger } from "../../services/shared/logging/index.ts";
import { basicAuthorization } from "../../services/token/clients/basic-credentials.ts";
import { type RunningTokenService, startTokenService } from "../../services/token/token-service.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { grpcTokenClient } from "../support/token-clients.ts";
import { createTestClient } from "../support/token-fixtures.ts";
import { testServiceSettings } from "../support/token-service-settings.ts";

/**
 * Every TokenService and AdminService RPC, over the real gRPC port and over Connect/JSON, fed
 * garbage: undecodable protobuf bytes, oversized messages, malformed JSON bodies, and each field in
 * turn set to hostile values. Every answer must be a clear typed status (an ErrorInfo reason that is
 * a Gatehouse code, on the gRPC code that code maps to; never `internal`), the server must keep
 * serving, and nothing may be written — apart from the audit log's record of refused admin changes.
 */

let tdb: TestDatabase;
let service: RunningTokenService;
let root: { id: string; secret: string };
const logLines: string[] = [];

const READ_ONLY = new Set([
  "GetJwks",
  "IssueServiceToken",
  "Introspect",
  "ListSessions",
  "GetClient",
  "ListClients",
  "ListSigningKeys",
  "ListAuditEvents",
]);

beforeAll(async () => {
  tdb = await useTestDatabase();
  const created = await createTestClient(tdb.db.prisma, {
    id: "root",
    roles: ["admin", "issuer", "service", "revoker", "introspector"],
  });
  root = { id: "root", secret: created.secret };
  service = await startTokenService({
    settings: testServiceSettings({
      databasePoolSize: 4,
      credentialCacheTtl: 60_000,
      // Hostile input, not load: the limits are tested elsewhere.
      rateLimitIssue: "off",
      rateLimitRefresh: "off",
      rateLimitIntrospect: "off",
      maxInFlightPerClient: "off",
    }),
    database: { kind: "postgres", url: tdb.url },
    logger: createLogger({
      level: "warn",
      component: "token",
      pretty: false,
      destination: {
        write: (line: string) => {
          logLines.push(line);
          return true;
        },
      } as never,
    }),
  });
  // Something to protect: a live session.
  const c = grpcTokenClient(service.grpcPort, root);
  await c.issue({ subject: "alice", audience: ["orders"] });
  c.close();
});
afterAll(async () => {
  await service?.shutdown();
  await tdb?.drop();
});

/** Rows per table of this schema. */
async function rowCounts(): Promise<Record<string, number>> {
  const pool = tdb.sql;
  const tables = await pool.query<{ table_name: string }>(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
  );
  const counts: Record<string, number> = {};
  for (const { table_name } of tables.rows) {
    const r = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM "${table_name}"`);
    counts[table_name] = Number(r.rows[0]!.n);
  }
  return counts;
}

// ---- transports --------------------------------------------------------------------------------

const raw = (b: Buffer) => b;
const rawClients = new Map<number, grpc.Client>();
/** AdminService lives on the admin plane; everything else on the public listeners. */
const isAdmin = (path: string) => path.startsWith("/gatehouse.v1.AdminService/");
function rawGrpc(path: string, body: Uint8Array, auth = true): Promise<{ code: number; details?: Buffer }> {
  const port = isAdmin(path) ? service.adminPort : service.grpcPort;
  let rawClient = rawClients.get(port);
  if (!rawClient) {
    rawClient = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    rawClients.set(port, rawClient);
  }
  const md = new grpc.Metadata();
  if (auth) md.set("authorization", basicAuthorization(root.id, root.secret));
  return new Promise((resolve) => {
    rawClient.makeUnaryRequest(
      path,
      raw,
      raw,
      Buffer.from(body),
      md,
      { deadline: Date.now() + 15_000 },
      (err) => {
        if (!err) resolve({ code: 0 });
        else {
          const bin = err.metadata?.get("grpc-status-details-bin")[0];
          resolve({ code: err.code, ...(bin ? { details: bin as Buffer } : {}) });
        }
      },
    );
  });
}

async function connectPost(
  path: string,
  body: string | Uint8Array,
  contentType = "application/json",
): Promise<{ status: number; json: Record<string, unknown> | undefined }> {
  const res = await fetch(`http://127.0.0.1:${isAdmin(path) ? service.adminPort : service.httpPort}${path}`, {
    method: "POST",
    headers: { "content-type": contentType, authorization: basicAuthorization(root.id, root.secret) },
    body,
  });
  const text = await res.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {}
  return { status: res.status, json };
}

// ---- what every refusal must look like -----------------------------------------------------------

interface Seen {
  rpc: string;
  input: string;
  outcome: string;
}
const seen: Seen[] = [];

function expectTypedGrpc(rpc: string, input: string, answer: { code: number; details?: Buffer }): void {
  if (answer.code === 0) {
    expect(READ_ONLY.has(rpc), `${rpc} accepted ${input}`).toBe(true);
    seen.push({ rpc, input, outcome: "ok" });
    return;
  }
  expect(answer.details, `${rpc} ${input}: status without details (code ${answer.code})`).toBeDefined();
  const status = fromBinary(StatusSchema, answer.details!);
  const info = anyUnpack(status.details[0]!, ErrorInfoSchema);
  expect(info?.domain).toBe("gatehouse");
  const reason = info!.reason;
  expect(isGatehouseErrorCode(reason), `${rpc} ${input}: reason ${reason}`).toBe(true);
  expect(reason, `${rpc} ${input}`).not.toBe("internal");
  expect(answer.code).toBe(STATUS_BY_CODE[reason as keyof typeof STATUS_BY_CODE].grpc);
  seen.push({ rpc, input, outcome: reason });
}

function expectTypedConnect(
  rpc: string,
  input: string,
  answer: { status: number; json: Record<string, unknown> | undefined },
): void {
  if (answer.status === 200) {
    expect(READ_ONLY.has(rpc), `${rpc} accepted ${input}`).toBe(true);
    seen.push({ rpc, input, outcome: "ok" });
    return;
  }
  expect(answer.status, `${rpc} ${input}`).toBeGreaterThanOrEqual(400);
  expect(answer.status, `${rpc} ${input}`).toBeLessThan(500);
  expect(typeof answer.json?.code, `${rpc} ${input}: no Connect error body`).toBe("string");
  const details = answer.json!.details as { type: string; debug?: { reason?: string } }[] | undefined;
  const reason = details?.find((d) => d.type === "google.rpc.ErrorInfo")?.debug?.reason;
  expect(reason !== undefined && isGatehouseErrorCode(reason), `${rpc} ${input}: reason ${reason}`).toBe(
    true,
  );
  expect(reason).not.toBe("internal");
  expect(answer.status).toBe(STATUS_BY_CODE[reason as keyof typeof STATUS_BY_CODE].http);
  seen.push({ rpc, input, outcome: reason! });
}

// ---- hostile inputs ----------------------------------------------------------------------------

const SERVICES: DescService[] = [TokenService, AdminService];
const methods = SERVICES.flatMap((s) =>
  s.methods.map((m) => ({ service: s, method: m as DescMethodUnary, path: `/${s.typeName}/${m.name}` })),
);

/** Bytes that protobuf messages do not decode from (which ones, the test asks protobuf-es itself). */
const UNDECODABLE: [string, Buffer][] = [
  ["unterminated varint", Buffer.from([0xff, 0xff, 0xff, 0xff])],
  ["length past the end", Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])],
  ["truncated field", Buffer.from([0x0a, 0x05, 0x61])],
  ["field number 0", Buffer.from([0x02, 0x00])],
  ["reserved wire type 7", Buffer.from([0x0f, 0x00])],
  ["unterminated group", Buffer.from([0x0b, 0x08, 0x01])],
];

function decodes(schema: DescMessage, bytes: Uint8Array): boolean {
  try {
    fromBinary(schema, bytes);
    return true;
  } catch {
    return false;
  }
}

const HOSTILE_TEXT = `\u0000${"x".repeat(5000)}\u0007`;

/**
 * A hostile value for a field, by kind: oversized text with NULs, negative and huge numbers, bogus
 * enums; undefined for a bool, which has no hostile value.
 */
function hostileValue(field: DescField): unknown {
  if (field.fieldKind === "list") {
    if (field.listKind === "scalar" && field.scalar === 9)
      return Array.from({ length: 1000 }, () => "\u0000 x");
    if (field.listKind === "message") return Array.from({ length: 200 }, () => ({}));
    return Array.from({ length: 1000 }, () => -1);
  }
  if (field.fieldKind === "map")
    return Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}\u0000`, ""]));
  if (field.fieldKind === "enum") return 9999;
  if (field.fieldKind === "message") {
    if (field.message.typeName === "google.protobuf.Struct") {
      return { sub: "root", iss: "evil", [`x${"y".repeat(300)}`]: "z".repeat(5000) };
    }
    if (field.message.typeName === "google.protobuf.Timestamp") return { seconds: -99999999999n, nanos: -1 };
    if (field.message.typeName === "google.protobuf.Duration") return { seconds: -1n, nanos: -5 };
    return Object.fromEntries(
      field.message.fields
        .filter((f) => f.fieldKind !== "message")
        .map((f) => [f.localName, hostileValue(f)]),
    );
  }
  switch (field.scalar) {
    case 9: // string
      return HOSTILE_TEXT;
    case 12: // bytes
      return randomBytes(300);
    case 8: // bool
      return undefined;
    case 3:
    case 4:
    case 6:
    case 16:
    case 18: // 64-bit
      return field.scalar === 4 || field.scalar === 6 ? 18446744073709551615n : -9223372036854775808n;
    default:
      return field.scalar === 13 || field.scalar === 7 ? 4294967295 : -2147483648;
  }
}

/** One request per field (that field hostile, the rest default), plus one with every field hostile. */
function hostileRequests(input: DescMessage): [string, Uint8Array][] {
  const out: [string, Uint8Array][] = [];
  const all: Record<string, unknown> = {};
  for (const field of input.fields) {
    const value = hostileValue(field);
    if (value === undefined) continue;
    const init = field.oneof
      ? { [field.oneof.localName]: { case: field.localName, value } }
      : { [field.localName]: value };
    if (!field.oneof || !(field.oneof.localName in all)) Object.assign(all, init);
    out.push([`hostile ${field.name}`, toBinary(input, create(input, init as never))]);
  }
  if (input.fields.length > 1) {
    let bytes = toBinary(input, create(input, all as never));
    // Over the servers' 64 KiB message limit the handler never runs (the oversized-message test
    // covers that answer): shorten the lists so all the hostile fields still reach it together.
    if (bytes.length > 60 * 1024) {
      const shorter = Object.fromEntries(
        Object.entries(all).map(([k, v]) => [k, Array.isArray(v) ? v.slice(0, 100) : v]),
      );
      bytes = toBinary(input, create(input, shorter as never));
    }
    out.push(["every field hostile", bytes]);
  }
  return out;
}

/** Field values a careless check lets through, for each TokenService RPC with otherwise good fields. */
const BOUNDARY: Record<string, [string, Record<string, unknown>][]> = {
  Issue: [
    ["subject of 257 chars", { subject: "a".repeat(257), audience: ["orders"] }],
    ["subject with a lone surrogate", { subject: "a\ud800", audience: ["orders"] }],
    ["subject with U+FFFD", { subject: "a\ufffd", audience: ["orders"] }],
    ["17 audiences", { subject: "u", audience: Array.from({ length: 17 }, (_, i) => `a${i}`) }],
    ["scope with a space", { subject: "u", audience: ["orders"], scopes: ["orders:read orders:write"] }],
    ["reserved claim", { subject: "u", audience: ["orders"], claims: { sub: "root" } }],
    ["IP that is not one", { subject: "u", audience: ["orders"], device: { ipAddress: "1.2.3.4; DROP" } }],
  ],
  Refresh: [
    ["refresh token with the wrong prefix", { refreshToken: `ghr_${"a".repeat(43)}` }],
    ["refresh token one char short", { refreshToken: `gthr_${"a".repeat(42)}` }],
    ["unknown refresh token", { refreshToken: `gthr_${"a".repeat(43)}` }],
    [
      "65 scopes",
      { refreshToken: `gthr_${"a".repeat(43)}`, scopes: Array.from({ length: 65 }, (_, i) => `s${i}`) },
    ],
  ],
  Revoke: [
    ["no target", { reason: "x" }],
    ["session id not a UUID", { target: { case: "sessionId", value: "not-a-uuid" } }],
    ["access token that is not ours", { target: { case: "accessToken", value: "a.b.c" } }],
    ["subject of 257 chars", { target: { case: "subject", value: "s".repeat(257) } }],
    [
      "reason of 257 chars",
      {
        target: { case: "sessionId", value: "00000000-0000-0000-0000-000000000000" },
        reason: "r".repeat(257),
      },
    ],
  ],
  Introspect: [
    ["no token", {}],
    ["bad hint", { token: "x", tokenTypeHint: "id_token" }],
  ],
  ListSessions: [
    ["page size -1", { subject: "alice", pageSize: -1 }],
    ["page size 501", { subject: "alice", pageSize: 501 }],
    ["forged page token", { subject: "alice", pageToken: Buffer.from('[1,"x"]').toString("base64url") }],
  ],
};

describe("hostile input to every RPC", () => {
  let before: Record<string, number>;
  beforeAll(async () => {
    before = await rowCounts();
  });

  it("gRPC: undecodable bytes are invalid_request on every method", async () => {
    for (const { method, path } of methods) {
      for (const [label, bytes] of UNDECODABLE) {
        // A message that decodes is a request, not garbage: a mutating one would rightly act on it.
        if (!READ_ONLY.has(method.name) && decodes(method.input, bytes)) continue;
        const answer = await rawGrpc(path, bytes);
        expectTypedGrpc(method.name, label, answer);
        // protobuf-es reads a length-delimited singular scalar leniently (as packed); only bytes it
        // refuses must be refused.
        if (decodes(method.input, bytes)) continue;
        expect(seen.at(-1)!.outcome, `${method.name} ${label}`).toBe("invalid_request");
      }
    }
  });

  it("gRPC: an oversized message is RESOURCE_EXHAUSTED before any handler runs", async () => {
    for (const { path } of methods) {
      const answer = await rawGrpc(
        path,
        Buffer.concat([Buffer.from([0x0a, 0x90, 0xa1, 0x04]), Buffer.alloc(70_000, 0x61)]),
      );
      expect(answer.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    }
  });

  it("gRPC: each field hostile in turn, and all at once, on every method", async () => {
    for (const { method, path } of methods) {
      for (const [label, bytes] of hostileRequests(method.input)) {
        expectTypedGrpc(method.name, label, await rawGrpc(path, bytes));
      }
    }
  });

  it("gRPC: boundary values next to otherwise good fields", async () => {
    for (const { method, path } of methods.filter((m) => m.service === TokenService)) {
      for (const [label, init] of BOUNDARY[method.name] ?? []) {
        const answer = await rawGrpc(path, toBinary(method.input, create(method.input, init as never)));
        expectTypedGrpc(method.name, label, answer);
        expect(answer.code, `${method.name} ${label} was accepted`).not.toBe(0);
      }
    }
  });

  it("Connect/JSON: malformed bodies, wrong types, unknown fields, bad UTF-8 and oversized bodies", async () => {
    const bodies: [string, string | Uint8Array][] = [
      ["empty body", ""],
      ["truncated JSON", '{"a":'],
      ["a JSON array", "[]"],
      ["JSON null", "null"],
      ["a JSON string", '"x"'],
      ["an unknown field", '{"noSuchField":1}'],
      ["invalid UTF-8", Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])],
      // Nested under an unknown field, which the parser must still get through (or refuse) safely.
      ["deep nesting", `${'{"a":'.repeat(5000)}1${"}".repeat(5000)}`],
      ["oversized body", `{"x":"${"a".repeat(70_000)}"}`],
    ];
    for (const { service: s, method, path } of methods) {
      const first = method.input.fields[0];
      const typed: [string, string][] = first
        ? [
            [`${first.name} of the wrong type`, JSON.stringify({ [first.jsonName]: { nested: [1, 2] } })],
            [`${first.name} with a lone surrogate`, `{"${first.jsonName}":"\\ud800"}`],
          ]
        : [];
      for (const [label, body] of [...bodies, ...typed]) {
        const answer = await connectPost(path, body);
        if (label === "oversized body") {
          expect(answer.status, `${s.name}.${method.name} oversized`).toBe(429);
          expect(answer.json?.code).toBe("resource_exhausted");
          continue;
        }
        expectTypedConnect(method.name, label, answer);
      }
    }
  });

  it("Connect/JSON: each field hostile in turn on every method", async () => {
    for (const { method, path } of methods) {
      for (const [label, bytes] of hostileRequests(method.input)) {
        const answer = await connectPost(path, bytes, "application/proto");
        expectTypedConnect(method.name, `${label} (binary Connect)`, answer);
      }
    }
  });

  it("stays up, wrote nothing but the audit of refused admin changes, logged no failure", async () => {
    const after = await rowCounts();
    const { audit_events: auditBefore = 0, ...restBefore } = before;
    const { audit_events: auditAfter = 0, ...restAfter } = after;
    expect(restAfter).toEqual(restBefore);
    const audits = await tdb.db.prisma.auditEvent.findMany({ orderBy: { id: "asc" }, skip: auditBefore });
    expect(audits.length).toBe(auditAfter - auditBefore);
    for (const a of audits) expect(["failed", "denied"]).toContain(a.outcome);
    // Refused admin changes are audited, even when their target id was garbage (not recorded then).
    expect(audits.length).toBeGreaterThan(0);
    expect(
      audits.some((a) => (a.details as { target?: string } | null)?.target?.startsWith("not recorded")),
    ).toBe(true);

    // A normal call still works on both ports.
    const c = grpcTokenClient(service.grpcPort, root);
    const issued = await c.issue({ subject: "bob", audience: ["orders"] });
    expect(issued.accessToken).toMatch(/^ey/);
    c.close();
    const res = await fetch(`http://127.0.0.1:${service.httpPort}/readyz`);
    expect(res.status).toBe(200);

    // No internal failure (a bug) or lost audit write was logged.
    const failures = logLines
      .map((l) => JSON.parse(l) as { level: string; msg: string })
      .filter((l) => l.level === "error");
    expect(failures).toEqual([]);
    const byOutcome: Record<string, number> = {};
    for (const s of seen) byOutcome[s.outcome] = (byOutcome[s.outcome] ?? 0) + 1;
    console.log(
      "hostile rpcs",
      JSON.stringify({ answers: seen.length, byOutcome, auditRows: audits.length }),
    );
  });
});
