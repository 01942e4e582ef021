import type { AuthzAnswer, SidecarProcess } from "./gatehouse-processes.ts";
import { inPool } from "./scenario.ts";
import type { TokenCalls } from "./token-calls.ts";

export interface IssuedSession {
  subject: string;
  sessionId: string;
  accessToken: string;
  refreshToken: string;
}

/** Issues `count` sessions (audience `orders`) for subjects `<prefix>-<i>`; throws on any failure. */
export async function issueSessions(
  calls: TokenCalls,
  prefix: string,
  count: number,
): Promise<IssuedSession[]> {
  const out: IssuedSession[] = new Array(count);
  await inPool(
    Array.from({ length: count }, (_, i) => i),
    16,
    async (i) => {
      const subject = `${prefix}-${i}`;
      const r = await calls.issue({ subject, audience: ["orders"], scopes: ["orders:read"] });
      if (!r.ok)
        throw new Error(`Issue for ${subject} failed: ${r.status} ${r.failure.reason} ${r.failure.message}`);
      out[i] = {
        subject,
        sessionId: r.value.sessionId,
        accessToken: r.value.accessToken,
        refreshToken: r.value.refreshToken,
      };
    },
  );
  return out;
}

export interface VerdictCheck {
  /** "sidecar-name: token label answered 200 but was revoked", etc. */
  wrong: string[];
  /** How revoked tokens were refused, by code (`token_revoked`, ...), over all sidecars. */
  refusals: Map<string, number>;
  checked: number;
}

/**
 * Asks every sidecar about every token: the revoked ones must be refused, the others let through.
 * `label` names a token in the account (never the token itself).
 */
export async function checkVerdicts(
  sidecars: readonly { name: string; sidecar: SidecarProcess }[],
  revoked: readonly { label: string; token: string }[],
  kept: readonly { label: string; token: string }[],
): Promise<VerdictCheck> {
  const result: VerdictCheck = { wrong: [], refusals: new Map(), checked: 0 };
  const jobs = sidecars.flatMap((s) => [
    ...revoked.map((t) => ({ s, t, revoked: true })),
    ...kept.map((t) => ({ s, t, revoked: false })),
  ]);
  await inPool(jobs, 16, async ({ s, t, revoked: isRevoked }) => {
    let answer: AuthzAnswer;
    try {
      answer = await s.sidecar.authz(t.token);
    } catch (err) {
      answer = { status: 0, code: `no answer (${(err as Error).message})` };
    }
    result.checked++;
    if (isRevoked) {
      if (answer.status === 200) result.wrong.push(`${s.name}: ${t.label} was let through although revoked`);
      else result.refusals.set(answer.code, (result.refusals.get(answer.code) ?? 0) + 1);
    } else if (answer.status !== 200) {
      result.wrong.push(
        `${s.name}: ${t.label} was refused (${answer.status} ${answer.code}) although not revoked`,
      );
    }
  });
  return result;
}

export const formatCounts = (m: Map<string, number>) =>
  [...m.entries()].map(([k, n]) => `${k} ${n}`).join(", ") || "none";
