import { describe, expect, it } from "vitest";
import { ERROR_CODES } from "../../services/shared/errors/codes.ts";
import { GatehouseError } from "../../services/shared/errors/gatehouse-error.ts";
import { ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE } from "../../services/token/flows/token-exchange-request.ts";
import { parseForm } from "../../services/token/oauth/form-body.ts";
import {
  exchangeErrorOf,
  tokenExchangeRequestFromForm,
} from "../../services/token/oauth/grants/token-exchange.ts";
import { oauthErrorOf } from "../../services/token/oauth/oauth-errors.ts";

const form = (pairs: [string, string][]) =>
  parseForm(new TextEncoder().encode(new URLSearchParams(pairs).toString()));

describe("tokenExchangeRequestFromForm (RFC 8693 §2.1)", () => {
  const base: [string, string][] = [
    ["subject_token", "eyJ.subject"],
    ["subject_token_type", ACCESS_TOKEN_TYPE],
  ];

  it("reads every parameter, audience and resource repeated, scope split on spaces", () => {
    expect(
      tokenExchangeRequestFromForm(
        form([
          ...base,
          ["actor_token", "eyJ.actor"],
          ["actor_token_type", JWT_TOKEN_TYPE],
          ["audience", "orders"],
          ["audience", "billing"],
          ["resource", "https://billing.example/api"],
          ["scope", "orders:read billing:read"],
          ["requested_token_type", ACCESS_TOKEN_TYPE],
        ]),
      ),
    ).toEqual({
      subjectToken: "eyJ.subject",
      subjectTokenType: ACCESS_TOKEN_TYPE,
      actorToken: "eyJ.actor",
      actorTokenType: JWT_TOKEN_TYPE,
      audience: ["orders", "billing"],
      resource: ["https://billing.example/api"],
      scopes: ["orders:read", "billing:read"],
      requestedTokenType: ACCESS_TOKEN_TYPE,
    });
  });

  it("leaves optional parameters empty, empty values counting as absent (RFC 6749 §3.1)", () => {
    expect(
      tokenExchangeRequestFromForm(
        form([...base, ["actor_token", ""], ["audience", ""], ["scope", ""], ["requested_token_type", ""]]),
      ),
    ).toEqual({
      subjectToken: "eyJ.subject",
      subjectTokenType: ACCESS_TOKEN_TYPE,
      actorToken: "",
      actorTokenType: "",
      audience: [],
      resource: [],
      scopes: [],
      requestedTokenType: "",
    });
  });

  it.each([
    ["no subject_token", [["subject_token_type", ACCESS_TOKEN_TYPE]], "subject_token"],
    ["an empty subject_token", [["subject_token", ""], base[1]!], "subject_token"],
    ["no subject_token_type", [["subject_token", "eyJ.subject"]], "subject_token_type"],
    ["an actor_token without its type", [...base, ["actor_token", "eyJ.actor"]], "actor_token_type"],
    // Repeats are refused by the form reader, before the translator sees them.
    ["a repeated subject_token", [...base, ["subject_token", "eyJ.other"]], "subject_token"],
    ["a repeated scope", [...base, ["scope", "a"], ["scope", "b"]], "scope"],
  ] as [string, [string, string][], string][])("refuses %s as invalid_request", (_label, pairs, field) => {
    try {
      tokenExchangeRequestFromForm(form(pairs));
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(GatehouseError);
      expect(err).toMatchObject({ code: "invalid_request", metadata: { field } });
    }
  });
});

describe("exchangeErrorOf (RFC 8693 §2.2.2)", () => {
  it.each([
    ["audience_not_allowed", "invalid_target"],
    ["scope_not_allowed", "invalid_scope"],
    ["invalid_request", "invalid_request"],
    // An invalid or unacceptable subject or actor token, whatever the reason, is invalid_request.
    ["unsupported_token_type", "invalid_request"],
    ["invalid_grant", "invalid_request"],
    ["token_expired", "invalid_request"],
    ["session_revoked", "invalid_request"],
    ["actor_not_allowed", "invalid_request"],
    ["tenant_not_allowed", "invalid_request"],
    ["subject_not_allowed", "invalid_request"],
    // Shared with every grant.
    ["invalid_client", null],
    ["unauthorized_client", null],
    ["rate_limited", null],
    ["unavailable", null],
    ["internal", null],
  ] as const)("%s → %s", (code, error) => {
    expect(exchangeErrorOf(code)).toBe(error);
  });

  it("answers only RFC 6749 / RFC 8693 token-endpoint errors", () => {
    const allowed = new Set([null, "invalid_request", "invalid_target", "invalid_scope"]);
    for (const code of ERROR_CODES) expect(allowed.has(exchangeErrorOf(code))).toBe(true);
  });
});

describe("the token endpoint's mapping with a grant's own", () => {
  it.each([
    ["token_expired", { error: "invalid_request", status: 400 }, { error: "invalid_grant", status: 400 }],
    ["invalid_grant", { error: "invalid_request", status: 400 }, { error: "invalid_grant", status: 400 }],
    [
      "tenant_not_allowed",
      { error: "invalid_request", status: 400 },
      { error: "unauthorized_client", status: 400 },
    ],
    [
      "audience_not_allowed",
      { error: "invalid_target", status: 400 },
      { error: "invalid_target", status: 400 },
    ],
    ["invalid_client", { error: "invalid_client", status: 401 }, { error: "invalid_client", status: 401 }],
    [
      "rate_limited",
      { error: "temporarily_unavailable", status: 429 },
      { error: "temporarily_unavailable", status: 429 },
    ],
  ] as const)("%s: exchange %o, other grants %o", (code, exchange, other) => {
    expect(oauthErrorOf(code, exchangeErrorOf)).toEqual(exchange);
    expect(oauthErrorOf(code)).toEqual(other);
  });
});
