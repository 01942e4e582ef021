import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { loadSettings, SettingsError, types } from "../../services/shared/settings/index.ts";
import { isPlaceholderMasterKey } from "../../services/shared/settings/placeholder-master-keys.ts";
import { tokenServiceSettings } from "../../services/token/token-service-settings.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const COMPOSE_KEY = "REVWLU9OTFktZ2F0ZWhvdXNlLW1hc3Rlci1rZXktMzI=";

function serveWith(key: string) {
  return () =>
    loadSettings(tokenServiceSettings, {
      env: {
        DATABASE_URL: "postgres://db/x",
        GATEHOUSE_ISSUER: "https://auth.test",
        GATEHOUSE_MASTER_KEY: key,
      },
    });
}

describe("the master key gatehouse serve accepts", () => {
  it.each([
    ["the compose dev key", COMPOSE_KEY],
    ["32 zero bytes", Buffer.alloc(32).toString("base64")],
    ["32 equal bytes", Buffer.alloc(32, 7).toString("base64")],
    ["32 0xff bytes, base64url", Buffer.alloc(32, 0xff).toString("base64url")],
  ])("refuses %s in one line naming GATEHOUSE_MASTER_KEY and how to make a key", (_label, key) => {
    expect(serveWith(key)).toThrow(SettingsError);
    let message = "";
    try {
      serveWith(key)();
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^GATEHOUSE_MASTER_KEY: .*placeholder.*openssl rand -base64 32$/);
    expect(message).not.toContain("\n");
    expect(message).not.toContain(key);
  });

  it("accepts a random key", () => {
    const key = randomBytes(32);
    expect(serveWith(key.toString("base64"))().masterKey).toEqual(key);
  });
});

// Where a master key could be published: what operators copy from.
const PUBLISHED = ["deploy", "docs", "examples", "README.md", "services/dev"];

function* files(path: string): Generator<string> {
  const full = join(ROOT, path);
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(full);
  } catch {
    return;
  }
  if (stat.isFile()) {
    yield full;
    return;
  }
  for (const entry of readdirSync(full)) yield* files(join(path, entry));
}

/** Values written next to a master-key name (env, flag, YAML key), whatever they look like. */
const ASSIGNED = /(?:MASTER_KEY|master-key|masterKey)["']?\s*[:=]\s*["']?([A-Za-z0-9+/_=-]{8,})/g;
/** Any base64 or base64url word of 32 bytes, even with no name next to it. */
const KEY_LIKE = /(?<![A-Za-z0-9+/_-])([A-Za-z0-9+/_-]{43}=?)(?![A-Za-z0-9+/=_-])/g;

function scan() {
  const assigned: [string, string][] = [];
  const keyLike: [string, string][] = [];
  for (const path of PUBLISHED) {
    for (const file of files(path)) {
      const text = readFileSync(file, "utf8");
      const where = relative(ROOT, file);
      for (const m of text.matchAll(ASSIGNED)) assigned.push([where, m[1]!]);
      for (const m of text.matchAll(KEY_LIKE)) {
        // Metric names and file paths decode to 32 bytes too; a random key mixes cases and digits
        // (degenerate keys, which do not, are refused whatever the list says).
        if (![/[A-Z]/, /[a-z]/, /[0-9]/].every((r) => r.test(m[1]!))) continue;
        const bytes = Buffer.from(m[1]!.replace(/-/g, "+").replace(/_/g, "/"), "base64");
        if (bytes.length === 32) keyLike.push([where, m[1]!]);
      }
    }
  }
  return { assigned, keyLike };
}

describe("every master key this repository publishes", () => {
  const { assigned, keyLike } = scan();

  it("finds the compose key (the scan looks where keys are)", () => {
    expect(assigned).toContainEqual(["deploy/compose/master-key.env", COMPOSE_KEY]);
    expect(keyLike).toContainEqual(["deploy/compose/master-key.env", COMPOSE_KEY]);
  });

  it("is refused by gatehouse serve", () => {
    for (const [file, value] of assigned) {
      expect(types.masterKey().safeParse(value).success, `${file}: ${value}`).toBe(false);
    }
    for (const [file, value] of keyLike) {
      const bytes = Buffer.from(value.replace(/-/g, "+").replace(/_/g, "/"), "base64");
      expect(isPlaceholderMasterKey(bytes), `${file}: ${value}`).toBe(true);
    }
  });
});
