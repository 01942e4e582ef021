import { SettingsError } from "../shared/settings/settings.ts";
import type { Policy } from "./policy/compile-policy.ts";
import { PolicyError } from "./policy/policy-document.ts";

/**
 * A policy file that cannot be loaded at start is a configuration error (exit 2), named after its
 * setting: a sidecar must not start without the policy it was given. Each policy problem keeps its
 * own `file:line:` line, as a compiler's would.
 */
export function policyStartError(file: string, err: unknown): SettingsError {
  if (err instanceof PolicyError) return new SettingsError("GATEHOUSE_POLICY_FILE", err.message);
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === "ENOENT") {
    return new SettingsError(
      "GATEHOUSE_POLICY_FILE",
      `${file} does not exist: fix the path or mount the file`,
    );
  }
  if (code === "EACCES") {
    return new SettingsError("GATEHOUSE_POLICY_FILE", `${file} is not readable by this process`);
  }
  if (code === "EISDIR") {
    return new SettingsError("GATEHOUSE_POLICY_FILE", `${file} is a directory: name the policy file in it`);
  }
  return new SettingsError("GATEHOUSE_POLICY_FILE", `cannot read ${file}: ${(err as Error)?.message ?? err}`);
}

/**
 * Throws when the settings leave every guarded route with no audience to accept: a token's `aud`
 * must name one of the route's audiences (or GATEHOUSE_AUDIENCES when the route names none), so such
 * a sidecar would answer `wrong_audience` to every token while looking healthy. A policy whose routes
 * are all public needs no audience.
 */
export function assertSomeTokenAccepted(policy: Policy, defaultAudiences: readonly string[]): void {
  if (defaultAudiences.length > 0) return;
  const rules = [policy.defaultRule, ...policy.rules];
  const guarded = rules.filter((r) => !r.public);
  if (guarded.length === 0) return;
  if (guarded.some((r) => (r.requirement.audiences?.length ?? 0) > 0)) return;
  const why =
    policy.source === "(default)"
      ? "no route policy (GATEHOUSE_POLICY_FILE) names any"
      : `the route policy ${policy.source} names none`;
  throw new SettingsError(
    "GATEHOUSE_AUDIENCES",
    `not set and ${why}, so every token would be refused: set GATEHOUSE_AUDIENCES to this app's audience or give the policy's rules audiences`,
  );
}
