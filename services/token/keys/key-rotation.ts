import type { Logger } from "../../shared/logging/index.ts";
import type { AuditActor } from "../audit/audit-record.ts";
import type { KeyRing } from "./key-ring.ts";
import type { RotationResult, SigningKeys } from "./signing-keys.ts";

export interface KeyRotationOptions {
  signingKeys: SigningKeys;
  /** Reloaded after a step changed something, so this replica signs with the new key at once. */
  keyRing: Pick<KeyRing, "reload">;
  /**
   * GATEHOUSE_KEY_ROTATION: stage and activate keys on the schedule. Off, the timer still retires
   * RETIRING keys whose tokens have all expired (that only ever shrinks the JWKS).
   */
  schedule: boolean;
  log: Logger;
  /** How often the step runs. Default one minute; every decision compares row times with the clock. */
  checkEveryMs?: number;
}

export interface KeyRotation {
  start(): void;
  /** One step now, exactly what the timer runs. */
  runOnce(): Promise<RotationResult>;
  /** Stops the timer and waits for a step in flight. */
  stop(): Promise<void>;
}

const ACTOR: AuditActor = { actor: "system:key-rotation" };

/**
 * Scheduled key rotation. Every replica runs the timer; the step takes the key lock, so replicas
 * queue and the first one does the work while the others find nothing due. All state is in the
 * rows (when a key was staged, activated, set retiring), so a restart mid-rotation just continues.
 */
export function createKeyRotation(options: KeyRotationOptions): KeyRotation {
  const { signingKeys, keyRing, log } = options;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<unknown> | undefined;

  async function step(): Promise<RotationResult> {
    const result = await signingKeys.rotate({ schedule: options.schedule, force: false }, ACTOR);
    const changed = result.staged || result.activated || result.retired.length > 0;
    if (changed) {
      await keyRing.reload();
      log.info(
        {
          staged: result.staged?.kid,
          activated: result.activated?.kid,
          retiring: result.retiring?.kid,
          retired: result.retired.map((k) => k.kid),
          nextRotationAt:
            result.nextRotationAt === null ? null : new Date(result.nextRotationAt).toISOString(),
        },
        "signing-key rotation step",
      );
    }
    return result;
  }

  function tick(): void {
    if (inFlight) return;
    inFlight = step()
      .catch((err) => log.warn({ err: (err as Error).message }, "signing-key rotation step failed"))
      .finally(() => {
        inFlight = undefined;
      });
  }

  return {
    start() {
      if (timer) return;
      tick();
      timer = setInterval(tick, options.checkEveryMs ?? 60_000);
      timer.unref();
    },
    runOnce: step,
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await inFlight;
    },
  };
}
