import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import {
  ClientRole,
  CreateClientRequestSchema,
  UpdateClientRequestSchema,
} from "../../services/gen/proto/gatehouse/v1/admin_service_pb.ts";
import {
  CLIENT_DEFAULTS,
  checkClientId,
  generateClientId,
  settingsForCreate,
  settingsForUpdate,
} from "../../services/token/admin/client-settings.ts";
import { decodePageToken, encodePageToken, pageSize } from "../../services/token/admin/page-cursor.ts";

const MAX_TTL_SECONDS = 3600;
const createReq = (init: Parameters<typeof create<typeof CreateClientRequestSchema>>[1]) =>
  create(CreateClientRequestSchema, { name: "n", roles: [ClientRole.ISSUER], ...init });

function codeOf(fn: () => unknown): { code?: string; field?: string } {
  try {
    fn();
  } catch (err) {
    const e = err as { code?: string; metadata?: Record<string, string> };
    return { code: e.code, field: e.metadata?.field };
  }
  return {};
}

describe("client ids", () => {
  it.each(["svc", "checkout-web", "a.b_c-d", `a${"b".repeat(63)}`])("accepts %s", (id) => {
    expect(checkClientId(id)).toBe(id);
  });
  it.each(["", "ab", "Upper", "9lives", "-dash", "has space", `a${"b".repeat(64)}`])("refuses %j", (id) => {
    expect(codeOf(() => checkClientId(id))).toEqual({ code: "invalid_request", field: "client_id" });
  });
  it("generates ids that pass the check", () => {
    for (let i = 0; i < 20; i++) expect(checkClientId(generateClientId())).toBeTruthy();
  });
});

describe("settingsForCreate", () => {
  it("fills in the documented defaults", () => {
    expect(settingsForCreate(createReq({}), MAX_TTL_SECONDS)).toEqual({
      name: "n",
      roles: ["issuer"],
      allowedAudiences: [],
      allowedScopes: [],
      allowedClaims: [],
      allowedTenants: [],
      allowedSubjectPrefixes: [],
      ...CLIENT_DEFAULTS,
      rateLimitPerSecond: null,
      rateLimitBurst: null,
    });
  });

  it("stores a client's own rate limit and burst; 0 stores null (the defaults, the rate)", () => {
    expect(
      settingsForCreate(createReq({ rateLimitPerSecond: 5, rateLimitBurst: 20 }), MAX_TTL_SECONDS),
    ).toMatchObject({ rateLimitPerSecond: 5, rateLimitBurst: 20 });
    expect(settingsForCreate(createReq({ rateLimitPerSecond: 5 }), MAX_TTL_SECONDS)).toMatchObject({
      rateLimitPerSecond: 5,
      rateLimitBurst: null,
    });
  });

  it("keeps an explicit zero grace period and de-duplicates roles", () => {
    const s = settingsForCreate(
      createReq({ roles: [ClientRole.ADMIN, ClientRole.ADMIN], refreshGracePeriod: durationFromMs(0) }),
      MAX_TTL_SECONDS,
    );
    expect(s).toMatchObject({ roles: ["admin"], refreshGraceSeconds: 0 });
  });

  it('keeps allowed tenants ("*" alone for any) and subject prefixes', () => {
    expect(
      settingsForCreate(
        createReq({ allowedTenants: ["acme", "acme", "globex"], allowedSubjectPrefixes: ["u:"] }),
        3600,
      ),
    ).toMatchObject({ allowedTenants: ["acme", "globex"], allowedSubjectPrefixes: ["u:"] });
    expect(settingsForCreate(createReq({ allowedTenants: ["*"] }), 3600).allowedTenants).toEqual(["*"]);
    const { settings } = settingsForUpdate(
      settingsForCreate(createReq({ allowedTenants: ["acme"] }), 3600),
      create(UpdateClientRequestSchema, {
        updateMask: { paths: ["allowed_tenants", "allowed_subject_prefixes"] },
      }),
      3600,
    );
    expect(settings).toMatchObject({ allowedTenants: [], allowedSubjectPrefixes: [] });
  });

  it("lets a client be granted may_act, the one reserved claim a client may set (RFC 8693 §4.4)", () => {
    expect(
      settingsForCreate(createReq({ allowedClaims: ["plan", "may_act"] }), MAX_TTL_SECONDS).allowedClaims,
    ).toEqual(["plan", "may_act"]);
  });

  it("caps the default access-token lifetime at the service maximum", () => {
    expect(settingsForCreate(createReq({}), 300).accessTokenTtlSeconds).toBe(300);
  });

  it.each([
    ["name", { name: "" }],
    ["roles", { roles: [] }],
    ["roles", { roles: [ClientRole.UNSPECIFIED] }],
    ["roles", { roles: [99 as ClientRole] }],
    ["allowed_claims", { allowedClaims: ["exp"] }],
    ["allowed_claims", { allowedClaims: ["act"] }],
    ["allowed_audiences", { allowedAudiences: ["a b"] }],
    ["allowed_tenants", { allowedTenants: ["*", "acme"] }],
    ["allowed_tenants", { allowedTenants: ["t".repeat(129)] }],
    ["allowed_subject_prefixes", { allowedSubjectPrefixes: ["a b"] }],
    ["access_token_ttl", { accessTokenTtl: durationFromMs(59_000) }],
    ["access_token_ttl", { accessTokenTtl: durationFromMs(3_601_000) }],
    ["refresh_grace_period", { refreshGracePeriod: durationFromMs(60_001) }],
    ["refresh_absolute_ttl", { refreshAbsoluteTtl: durationFromMs(366 * 86_400_000) }],
    ["refresh_idle_ttl", { refreshIdleTtl: durationFromMs(59 * 60_000) }],
    [
      "refresh_idle_ttl",
      { refreshIdleTtl: durationFromMs(30 * 86_400_000), refreshAbsoluteTtl: durationFromMs(86_400_000) },
    ],
    ["rate_limit_per_second", { rateLimitPerSecond: -1 }],
    ["rate_limit_per_second", { rateLimitPerSecond: 1_000_001 }],
    ["rate_limit_burst", { rateLimitPerSecond: 5, rateLimitBurst: -1 }],
    ["rate_limit_burst", { rateLimitPerSecond: 5, rateLimitBurst: 1_000_001 }],
    // A burst sizes the client's own bucket: without its own rate there is none.
    ["rate_limit_burst", { rateLimitBurst: 10 }],
  ] as const)("refuses a bad %s", (field, init) => {
    expect(codeOf(() => settingsForCreate(createReq(init as object), MAX_TTL_SECONDS))).toEqual({
      code: "invalid_request",
      field,
    });
  });
});

describe("settingsForUpdate", () => {
  const current = settingsForCreate(createReq({ allowedScopes: ["a"] }), MAX_TTL_SECONDS);

  it("changes only the masked fields; a masked unset duration restores the default", () => {
    const { settings, changed } = settingsForUpdate(
      { ...current, accessTokenTtlSeconds: 120 },
      create(UpdateClientRequestSchema, {
        name: "renamed",
        allowedScopes: ["ignored"],
        updateMask: { paths: ["name", "access_token_ttl"] },
      }),
      MAX_TTL_SECONDS,
    );
    expect(changed).toEqual(["name", "access_token_ttl"]);
    expect(settings).toEqual({ ...current, name: "renamed", accessTokenTtlSeconds: 600 });
  });

  it.each([[[]], [["client_id"]], [["secret_hash"]], [["accessTokenTtl"]]])(
    "refuses update_mask %j",
    (paths) => {
      expect(
        codeOf(() =>
          settingsForUpdate(
            current,
            create(UpdateClientRequestSchema, { updateMask: { paths } }),
            MAX_TTL_SECONDS,
          ),
        ),
      ).toEqual({ code: "invalid_request", field: "update_mask" });
    },
  );

  it("refuses clearing the rate while a burst stays; clearing both restores the defaults", () => {
    const limited = { ...current, rateLimitPerSecond: 5, rateLimitBurst: 20 };
    const rateOnly = create(UpdateClientRequestSchema, { updateMask: { paths: ["rate_limit_per_second"] } });
    expect(codeOf(() => settingsForUpdate(limited, rateOnly, MAX_TTL_SECONDS))).toEqual({
      code: "invalid_request",
      field: "rate_limit_burst",
    });
    const both = create(UpdateClientRequestSchema, {
      updateMask: { paths: ["rate_limit_per_second", "rate_limit_burst"] },
    });
    expect(settingsForUpdate(limited, both, MAX_TTL_SECONDS).settings).toEqual(current);
  });

  it("checks the result as a whole: idle timeout within the absolute lifetime", () => {
    const req = create(UpdateClientRequestSchema, {
      refreshAbsoluteTtl: durationFromMs(2 * 3_600_000),
      updateMask: { paths: ["refresh_absolute_ttl"] },
    });
    expect(codeOf(() => settingsForUpdate(current, req, MAX_TTL_SECONDS))).toEqual({
      code: "invalid_request",
      field: "refresh_idle_ttl",
    });
  });
});

describe("page tokens", () => {
  it("round-trips a position and refuses another listing's token or garbage", () => {
    const token = encodePageToken([1700, "x"], ["issuer", false]);
    expect(decodePageToken(token, ["issuer", false], ["millis", "text"])).toEqual([1700, "x"]);
    for (const [t, filters] of [
      [token, ["admin", false]],
      ["%%%", ["issuer", false]],
      [Buffer.from("[1]").toString("base64url"), ["issuer", false]],
    ] as const) {
      expect(codeOf(() => decodePageToken(t, filters, ["millis", "text"]))).toEqual({
        code: "invalid_request",
        field: "page_token",
      });
    }
  });

  it("treats page size 0 as the default and caps large ones", () => {
    expect([pageSize(0), pageSize(7), pageSize(10_000)]).toEqual([50, 7, 500]);
    expect(codeOf(() => pageSize(-1)).code).toBe("invalid_request");
  });
});
