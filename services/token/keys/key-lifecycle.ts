/**
 * The signing-key lifecycle as pure rules: when a staged key may sign, when a retiring key may leave
 * the JWKS, and what one step of scheduled rotation does. Times are epoch milliseconds; the caller
 * reads the rows, asks these rules, and applies the answer under the key lock.
 */
export type KeyStatus = "staged" | "active" | "retiring" | "retired" | "revoked";

export interface KeyTimes {
  kid: string;
  status: KeyStatus;
  createdAt: number;
  activatedAt: number | null;
  retiringAt: number | null;
}

export interface KeyLifecyclePolicy {
  /** How long a key signs before scheduled rotation replaces it. */
  rotationIntervalMs: number;
  /** How long scheduled rotation keeps a staged key in the JWKS before it signs. */
  publishDelayMs: number;
  /**
   * The least time any staged key is published before it may sign without `force`: the JWKS
   * cache period plus the time replicas take to notice a key.
   */
  minPublishMs: number;
  /** The longest access-token lifetime: how long a key's tokens outlive its last signature. */
  maxAccessTokenTtlMs: number;
  /** Extra time a retiring key stays published: replicas may sign with it until they reload. */
  retireSlackMs: number;
}

/** Settings as the token service parses them, turned into the lifecycle's policy. */
export function keyLifecyclePolicy(settings: {
  keyRotationInterval: number;
  keyPublishDelay: number;
  jwksMaxAge: number;
  maxAccessTokenTtl: number;
  reloadMs: number;
}): KeyLifecyclePolicy {
  const minPublishMs = settings.jwksMaxAge + settings.reloadMs;
  return {
    rotationIntervalMs: settings.keyRotationInterval,
    publishDelayMs: Math.max(settings.keyPublishDelay, minPublishMs),
    minPublishMs,
    maxAccessTokenTtlMs: settings.maxAccessTokenTtl,
    retireSlackMs: settings.reloadMs,
  };
}

/** When a staged key has been published long enough to sign (without `force`). */
export function activatableAt(key: Pick<KeyTimes, "createdAt">, policy: KeyLifecyclePolicy): number {
  return key.createdAt + policy.minPublishMs;
}

/** When every token a retiring key signed has expired, so it may leave the JWKS. */
export function retirableAt(key: Pick<KeyTimes, "retiringAt">, policy: KeyLifecyclePolicy): number {
  return (key.retiringAt ?? 0) + policy.maxAccessTokenTtlMs + policy.retireSlackMs;
}

export interface RotationOptions {
  /** Follow the rotation schedule (stage and activate when due); off: only retire expired keys. */
  schedule: boolean;
  /** Rotate now as if the active key were due (never activating a key published too briefly). */
  force: boolean;
}

export interface RotationPlan {
  /** Stage a new key. */
  stage: boolean;
  /** Activate this staged key; the active one becomes retiring. */
  activate: string | null;
  /**
   * There is no active key at all: activate `activate` (or the key staged by this step) at once,
   * published or not, because nothing can be issued until something signs.
   */
  noActiveKey: boolean;
  /** Retiring keys whose tokens have all expired. */
  retire: string[];
}

function newestFirst(a: KeyTimes, b: KeyTimes): number {
  return b.createdAt - a.createdAt;
}

/** One step of rotation: what is due at `now` given every key that is not retired or revoked. */
export function planRotation(
  keys: readonly KeyTimes[],
  now: number,
  policy: KeyLifecyclePolicy,
  options: RotationOptions,
): RotationPlan {
  const retire = keys
    .filter((k) => k.status === "retiring" && retirableAt(k, policy) <= now)
    .map((k) => k.kid);
  const staged = keys.filter((k) => k.status === "staged").sort(newestFirst);
  const active = keys.find((k) => k.status === "active");
  if (!active) {
    return { stage: staged.length === 0, activate: staged[0]?.kid ?? null, noActiveKey: true, retire };
  }
  const dueAt = (active.activatedAt ?? active.createdAt) + policy.rotationIntervalMs;
  const stageDue = options.force || (options.schedule && now >= dueAt - policy.publishDelayMs);
  const activationDue = options.force || (options.schedule && now >= dueAt);
  const minAge = options.force ? policy.minPublishMs : policy.publishDelayMs;
  const ready = staged.find((k) => k.createdAt + minAge <= now);
  return {
    stage: stageDue && staged.length === 0,
    activate: activationDue && ready ? ready.kid : null,
    noActiveKey: false,
    retire,
  };
}

/** The earliest instant after which {@link planRotation} would do something, or null if never. */
export function nextRotationAt(
  keys: readonly KeyTimes[],
  policy: KeyLifecyclePolicy,
  options: Pick<RotationOptions, "schedule">,
): number | null {
  const times = keys.filter((k) => k.status === "retiring").map((k) => retirableAt(k, policy));
  const active = keys.find((k) => k.status === "active");
  if (options.schedule && active) {
    const dueAt = (active.activatedAt ?? active.createdAt) + policy.rotationIntervalMs;
    const staged = keys.filter((k) => k.status === "staged");
    if (staged.length === 0) times.push(dueAt - policy.publishDelayMs);
    else times.push(Math.max(dueAt, Math.min(...staged.map((k) => k.createdAt + policy.publishDelayMs))));
  }
  return times.length === 0 ? null : Math.min(...times);
}
