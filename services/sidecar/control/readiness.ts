import type { JwksStatus } from "../jwks/jwks-cache.ts";
import type { RevocationSource } from "../revocation-state/revocation-source.ts";
import type { RevocationState } from "../revocation-state/revocation-state.ts";

/** What `/readyz` answers: 200 when `ready`, else 503 with the problems. */
export interface Readiness {
  readonly ready: boolean;
  readonly problems: readonly string[];
  readonly jwks: { readonly keys: number; readonly ageSeconds: number | null; readonly stale: boolean };
  readonly revocation: {
    readonly source: RevocationSource;
    readonly stale: boolean;
    readonly failMode: "open" | "closed";
  };
  readonly policy: string;
  /**
   * The last reload of the policy file, when it was refused: the file no longer compiles, so the
   * previous policy is still in force. Reported, not a problem: that policy still decides correctly.
   */
  readonly policyReload: { readonly refused: false } | PolicyRefusal;
}

export interface PolicyRefusal {
  readonly refused: true;
  /** ISO time of the refused reload. */
  readonly at: string;
  /** The compiler's first problem (file:line:column: path: message). */
  readonly error: string;
}

export interface ReadinessSources {
  jwks: () => JwksStatus;
  revocation: RevocationState;
  /** `none`: no stream feeds the state (the operator said so); reported, not a problem. */
  revocationSource: RevocationSource;
  failOpen: boolean;
  /** The file (or "(default)") of the policy in force; the policy is loaded before anything listens. */
  policy: () => string;
  /** The last refused reload, until one succeeds; undefined when the file in force is the file on disk. */
  policyRefusal: () => PolicyRefusal | undefined;
  draining: () => boolean;
  /** Extra gates, e.g. the revocation-stream follower's bootstrap; each returns its problems. */
  contributors: readonly (() => readonly string[])[];
  now: () => number;
}

/**
 * Ready means this sidecar would decide correctly right now: not draining, a JWKS loaded, the
 * revocation state current (when stale state fails closed, a stale sidecar would refuse every
 * token), and every contributor content. A JWKS past its maximum age is reported but does not
 * make the pod unready: its keys still verify, and pulling every pod out of service because the
 * token service is down would turn its outage into everyone's.
 */
export function readinessOf(sources: ReadinessSources): Readiness {
  const problems: string[] = [];
  if (sources.draining()) problems.push("draining");
  const jwks = sources.jwks();
  if (!jwks.ready) {
    problems.push(`JWKS not loaded yet${jwks.lastError === undefined ? "" : ` (${jwks.lastError})`}`);
  }
  const revocationStale = sources.revocation.isStale(sources.now());
  if (revocationStale && !sources.failOpen) problems.push("revocation state is stale (fail mode closed)");
  for (const contributor of sources.contributors) problems.push(...contributor());
  return {
    ready: problems.length === 0,
    problems,
    jwks: {
      keys: jwks.keys,
      ageSeconds: Number.isFinite(jwks.ageMs) ? Math.round(jwks.ageMs / 1000) : null,
      stale: jwks.stale,
    },
    revocation: {
      source: sources.revocationSource,
      stale: revocationStale,
      failMode: sources.failOpen ? "open" : "closed",
    },
    policy: sources.policy(),
    policyReload: sources.policyRefusal() ?? { refused: false },
  };
}
