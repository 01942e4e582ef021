import { describe, expect, it } from "vitest";
import { ERROR_CODES, isGatehouseErrorCode } from "../../services/shared/errors/codes.ts";
import { GatehouseError } from "../../services/shared/errors/gatehouse-error.ts";
import {
  GrpcCode,
  grpcCodeOf,
  httpStatusOf,
  STATUS_BY_CODE,
} from "../../services/shared/errors/status-map.ts";

describe("error codes", () => {
  it("map every code to a gRPC status and an HTTP status, once", () => {
    expect(Object.keys(STATUS_BY_CODE).sort()).toEqual([...ERROR_CODES].sort());
    for (const code of ERROR_CODES) {
      expect(Object.values(GrpcCode)).toContain(grpcCodeOf(code));
      expect(httpStatusOf(code)).toBeGreaterThanOrEqual(400);
    }
  });

  it.each([
    ["invalid_request", GrpcCode.INVALID_ARGUMENT, 400],
    ["invalid_client", GrpcCode.UNAUTHENTICATED, 401],
    ["unauthorized_client", GrpcCode.PERMISSION_DENIED, 403],
    ["scope_not_allowed", GrpcCode.PERMISSION_DENIED, 403],
    ["insufficient_scope", GrpcCode.PERMISSION_DENIED, 403],
    ["invalid_grant", GrpcCode.UNAUTHENTICATED, 400],
    ["refresh_token_reused", GrpcCode.UNAUTHENTICATED, 400],
    ["session_revoked", GrpcCode.UNAUTHENTICATED, 401],
    ["token_expired", GrpcCode.UNAUTHENTICATED, 401],
    ["not_found", GrpcCode.NOT_FOUND, 404],
    ["rate_limited", GrpcCode.RESOURCE_EXHAUSTED, 429],
    ["unavailable", GrpcCode.UNAVAILABLE, 503],
    ["internal", GrpcCode.INTERNAL, 500],
  ] as const)("%s → gRPC %i, HTTP %i", (code, grpc, http) => {
    expect(grpcCodeOf(code)).toBe(grpc);
    expect(httpStatusOf(code)).toBe(http);
  });

  it("recognises its own codes only", () => {
    expect(isGatehouseErrorCode("session_revoked")).toBe(true);
    expect(isGatehouseErrorCode("SESSION_REVOKED")).toBe(false);
    expect(isGatehouseErrorCode(42)).toBe(false);
  });
});

describe("GatehouseError.from", () => {
  it("keeps a GatehouseError as it is", () => {
    const e = new GatehouseError("not_found", "no such client");
    expect(GatehouseError.from(e)).toBe(e);
  });

  it("hides anything unexpected behind a generic internal error, keeping it as the private cause", () => {
    const bug = new TypeError("cannot read properties of undefined (reading 'password=hunter2')");
    const e = GatehouseError.from(bug);
    expect(e).toMatchObject({ code: "internal", message: "internal error" });
    expect(e.message).not.toContain("hunter2");
    expect(e.cause).toBe(bug);
  });

  it.each([
    [{ code: "57P01", message: "terminating connection due to administrator command" }],
    [{ code: "08006", message: "connection failure" }],
    [{ code: "ECONNREFUSED", message: "connect ECONNREFUSED 127.0.0.1:5432" }],
    [new Error("Connection terminated unexpectedly")],
  ])("turns a lost database connection %o into unavailable with a retry hint", (err) => {
    const e = GatehouseError.from(err);
    expect(e.code).toBe("unavailable");
    expect(e.retryAfterMs).toBeGreaterThan(0);
    expect(e.message).not.toContain("5432");
  });

  it("rebuilds a wire error from its reason, unknown reasons as internal", () => {
    expect(GatehouseError.fromReason("session_revoked", "gone").code).toBe("session_revoked");
    expect(GatehouseError.fromReason("made_up", "?").code).toBe("internal");
  });
});
