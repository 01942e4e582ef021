import type { RunningSidecar } from "../../services/sidecar/sidecar.ts";
import {
  DIFFERENTIAL_POLICY,
  HANDLER_RULE,
  type HandlerName,
  type HandlerRun,
  type RuleName,
  RunLog,
  type RunningApp,
  startExpressApp,
  startFastifyApp,
} from "./differential-apps.ts";
import { createLocalIssuer } from "./local-issuer.ts";
import { type RunningNginx, startNginx } from "./nginx.ts";
import { removePolicies, startTestSidecar, writePolicy } from "./sidecar-fixtures.ts";

/**
 * Express 5 and Fastify apps behind the guard, the way the guard's contract is meant to hold:
 * behind the sidecar's proxy (one sidecar per app) and behind a real nginx asking the sidecar's
 * forward-auth. Callers send probes with the credentials below and read what the apps ran from
 * `log`; {@link satisfies} says whether a credential may reach a handler at all.
 */

/** A credential a probe is sent with: no token, or a token with these scopes and audience. */
export interface Credential {
  name: string;
  token: string | undefined;
  subject: string | undefined;
  scopes: readonly string[];
  audience: readonly string[];
}

/** The scope each guarded rule needs (all of them also need the audience `orders`). */
export const RULE_SCOPE: Record<Exclude<RuleName, "public" | "default">, string> = {
  admin: "admin",
  internal: "internal",
  items: "items:read",
  "grpc-delete": "orders:write",
};
const SCOPES = Object.values(RULE_SCOPE);

/** Whether a request with `credential` may reach `handler` under the policy the app was written to. */
export function satisfies(credential: Credential, handler: HandlerName): boolean {
  const rule = HANDLER_RULE[handler];
  if (rule === "public") return true;
  if (credential.token === undefined || !credential.audience.includes("orders")) return false;
  return rule === "default" || credential.scopes.includes(RULE_SCOPE[rule]);
}

export interface FrontEnd {
  /** e.g. `proxy→express`, `nginx→fastify-default`. */
  name: string;
  kind: "proxy" | "forward-auth";
  port: number;
  app: string;
}

export interface Harness {
  log: RunLog;
  frontEnds: FrontEnd[];
  /** No token; a token for exactly one rule each; a valid token with no scope; the wrong audience. */
  credentials: {
    none: Credential;
    plain: Credential;
    foreign: Credential;
    /** A token holding only the scope of the rule. */
    only: Record<keyof typeof RULE_SCOPE, Credential>;
    /** A token holding every scope but the rule's. */
    allBut: Record<keyof typeof RULE_SCOPE, Credential>;
  };
  sidecars: RunningSidecar[];
  nginx: RunningNginx;
  stop(): Promise<void>;
}

export interface HarnessOptions {
  /** Which apps to start behind the proxy and behind nginx (by app name, see {@link APP_NAMES}). */
  proxied: readonly AppName[];
  forwardAuth: readonly AppName[];
}

const APP_NAMES = ["express", "fastify-default", "fastify-lenient"] as const;
type AppName = (typeof APP_NAMES)[number];

/** Sidecar settings shared by every sidecar of the harness. */
function sidecarEnv(policyFile: string, appPort: number): Record<string, string> {
  return {
    // The injected fetch serves the JWKS; nothing listens here.
    GATEHOUSE_TOKEN_SERVICE_URL: "http://127.0.0.1:9",
    GATEHOUSE_POLICY_FILE: policyFile,
    GATEHOUSE_UPSTREAM: `http://127.0.0.1:${appPort}`,
    GATEHOUSE_FORWARD_AUTH_HEADERS: "x-original",
    // No revocation stream here, and the tokens have no session to revoke.
    GATEHOUSE_REVOCATION: "none",
  };
}

export async function startHarness(options: HarnessOptions): Promise<Harness> {
  const log = new RunLog();
  const issuer = await createLocalIssuer();
  const policyFile = writePolicy(DIFFERENTIAL_POLICY);
  const credential = (name: string, scopes: readonly string[], audience = ["orders"]): Credential => ({
    name,
    token: issuer.mint({ subject: `subject-${name}`, scopes, audience }),
    subject: `subject-${name}`,
    scopes,
    audience,
  });
  const rules = Object.keys(RULE_SCOPE) as (keyof typeof RULE_SCOPE)[];
  const credentials: Harness["credentials"] = {
    none: { name: "none", token: undefined, subject: undefined, scopes: [], audience: [] },
    plain: credential("plain", []),
    foreign: credential("foreign", SCOPES, ["billing"]),
    only: Object.fromEntries(rules.map((r) => [r, credential(`only-${r}`, [RULE_SCOPE[r]])])) as never,
    allBut: Object.fromEntries(
      rules.map((r) => [
        r,
        credential(
          `all-but-${r}`,
          SCOPES.filter((s) => s !== RULE_SCOPE[r]),
        ),
      ]),
    ) as never,
  };

  const apps = new Map<AppName, RunningApp>();
  const wanted = new Set([...options.proxied, ...options.forwardAuth]);
  const starters: Record<AppName, () => Promise<RunningApp>> = {
    express: () => startExpressApp(log, "express"),
    "fastify-default": () => startFastifyApp(log, "fastify-default"),
    "fastify-lenient": () =>
      startFastifyApp(log, "fastify-lenient", {
        ignoreTrailingSlash: true,
        caseSensitive: false,
        ignoreDuplicateSlashes: true,
      }),
  };
  for (const name of wanted) apps.set(name, await starters[name]());

  const sidecars: RunningSidecar[] = [];
  const frontEnds: FrontEnd[] = [];
  const startSidecarFor = async (app: RunningApp) => {
    const sidecar = await startTestSidecar(sidecarEnv(policyFile, app.port), { fetch: issuer.fetch });
    sidecars.push(sidecar);
    return sidecar;
  };
  for (const name of options.proxied) {
    const sidecar = await startSidecarFor(apps.get(name)!);
    frontEnds.push({ name: `proxy→${name}`, kind: "proxy", port: sidecar.proxyPort, app: name });
  }
  // nginx asks one sidecar's forward-auth for every site (forward-auth never calls the upstream).
  const authority = sidecars[0] ?? (await startSidecarFor(apps.get(options.forwardAuth[0]!)!));
  const nginx = await startNginx(
    authority.controlPort,
    options.forwardAuth.map((name) => ({ appPort: apps.get(name)!.port })),
  );
  options.forwardAuth.forEach((name, i) => {
    frontEnds.push({ name: `nginx→${name}`, kind: "forward-auth", port: nginx.ports[i]!, app: name });
  });

  return {
    log,
    frontEnds,
    credentials,
    sidecars,
    nginx,
    async stop() {
      await nginx.stop();
      await Promise.all(sidecars.map((s) => s.shutdown(100)));
      await Promise.all([...apps.values()].map((a) => a.close()));
      removePolicies();
    },
  };
}

/** Header names a client may use to pass itself off as the sidecar: `x-gatehouse-*` with `_` or `-`. */
const IDENTITY_NAME = /^x[-_]gatehouse[-_]/i;

/** Identity headers the app received that the sidecar did not set (spelled with `_`, or a spoofed value). */
export function spoofedHeaders(run: HandlerRun, spoofValue: string): string[] {
  return Object.entries(run.headers)
    .filter(
      ([name, value]) =>
        IDENTITY_NAME.test(name) && (name.includes("_") || String(value).includes(spoofValue)),
    )
    .map(([name, value]) => `${name}: ${String(value)}`);
}
