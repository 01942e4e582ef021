import { describe, expect, it } from "vitest";
import {
  loadSettings,
  renderSettingsTable,
  SettingsError,
  setting,
  types,
} from "../../services/shared/settings/index.ts";

const spec = {
  issuer: setting({
    env: "GATEHOUSE_ISSUER",
    description: "token issuer",
    schema: types.url(["https", "http"]),
  }),
  skew: setting({
    env: "GATEHOUSE_CLOCK_SKEW",
    description: "clock skew",
    default: "30s",
    schema: types.duration({ maxMs: 300_000 }),
  }),
  listen: setting({
    env: "GATEHOUSE_LISTEN",
    description: "listener",
    default: ":7400",
    schema: types.listenAddress(),
  }),
  poolSize: setting({
    env: "POOL",
    flag: "pool",
    description: "pool",
    default: "16",
    schema: types.integer(1, 500),
  }),
  failOpen: setting({
    env: "FAIL_OPEN",
    description: "fail open",
    default: "false",
    schema: types.boolean(),
  }),
  audiences: setting({ env: "AUDIENCES", description: "audiences", default: "", schema: types.list() }),
  mode: setting({
    env: "MODE",
    description: "mode",
    default: "closed",
    schema: types.oneOf(["closed", "open"]),
  }),
  masterKey: setting({
    env: "MASTER_KEY",
    description: "master key",
    optional: true,
    secret: true,
    schema: types.key32(),
  }),
};

const minimal = { GATEHOUSE_ISSUER: "https://auth.example.com" };

function errorOf(env: Record<string, string>, flags: Record<string, string> = {}): string {
  try {
    loadSettings(spec, { env, flags });
  } catch (err) {
    expect(err).toBeInstanceOf(SettingsError);
    return (err as Error).message;
  }
  throw new Error("expected a SettingsError");
}

describe("loadSettings", () => {
  it("applies defaults and parses every kind", () => {
    const s = loadSettings(spec, { env: { ...minimal, AUDIENCES: "orders, billing,,", POOL: "32" } });
    expect(s).toEqual({
      issuer: "https://auth.example.com",
      skew: 30_000,
      listen: { host: "0.0.0.0", port: 7400 },
      poolSize: 32,
      failOpen: false,
      audiences: ["orders", "billing"],
      mode: "closed",
      masterKey: undefined,
    });
  });

  it("lets a flag win over the environment", () => {
    const s = loadSettings(spec, {
      env: { ...minimal, POOL: "32" },
      flags: { pool: "8", "clock-skew": "2m" },
    });
    expect(s.poolSize).toBe(8);
    expect(s.skew).toBe(120_000);
  });

  it.each([
    [{}, {}, /^GATEHOUSE_ISSUER: required but not set/],
    [{ GATEHOUSE_ISSUER: "not a url" }, {}, /^GATEHOUSE_ISSUER: expected a URL/],
    [{ GATEHOUSE_ISSUER: "ftp://x" }, {}, /^GATEHOUSE_ISSUER: expected a https or http URL/],
    [
      { ...minimal, GATEHOUSE_CLOCK_SKEW: "soon" },
      {},
      /^GATEHOUSE_CLOCK_SKEW: expected a duration.*got "soon"/,
    ],
    [{ ...minimal, GATEHOUSE_CLOCK_SKEW: "10m" }, {}, /^GATEHOUSE_CLOCK_SKEW: must be at most 300000 ms/],
    [{ ...minimal, GATEHOUSE_LISTEN: "host:99999" }, {}, /^GATEHOUSE_LISTEN: port 99999 is out of range/],
    [{ ...minimal, GATEHOUSE_LISTEN: "a b" }, {}, /^GATEHOUSE_LISTEN: expected host:port/],
    [{ ...minimal, POOL: "0" }, {}, /^POOL: must be 1 or more/],
    [{ ...minimal, POOL: "1.5" }, {}, /^POOL: expected an integer/],
    [{ ...minimal }, { pool: "x" }, /^--pool: expected an integer/],
    [{ ...minimal, FAIL_OPEN: "maybe" }, {}, /^FAIL_OPEN: expected true or false/],
    [{ ...minimal, MODE: "ajar" }, {}, /^MODE: expected one of closed, open/],
    [{ ...minimal, MASTER_KEY: "c2hvcnQ=" }, {}, /^MASTER_KEY: expected exactly 32 bytes in base64$/],
  ])("rejects %o %o with one line naming the variable", (env, flags, pattern) => {
    const message = errorOf(env as Record<string, string>, flags as Record<string, string>);
    expect(message).toMatch(pattern);
    expect(message).not.toContain("\n");
  });

  it("never echoes a secret's value", () => {
    const secret = "this-is-not-base64-!!";
    const message = errorOf({ ...minimal, MASTER_KEY: secret });
    expect(message).not.toContain(secret);
  });

  it("names a bad default as the default", () => {
    const bad = { x: setting({ env: "X", description: "x", default: "nope", schema: types.integer(1, 2) }) };
    expect(() => loadSettings(bad, { env: {} })).toThrow(/^X \(default\): expected an integer/);
  });

  it("treats an empty environment variable as unset", () => {
    expect(loadSettings(spec, { env: { ...minimal, POOL: "" } }).poolSize).toBe(16);
  });

  it("renders a reference table from the same spec", () => {
    const table = renderSettingsTable(spec);
    expect(table).toContain("| `GATEHOUSE_CLOCK_SKEW` | `--clock-skew` | `30s` | clock skew |");
    expect(table).toContain("| `GATEHOUSE_ISSUER` | `--issuer` | **required** | token issuer |");
    expect(table).toContain("| `MASTER_KEY` | `--master-key` | unset | master key (secret) |");
  });
});
