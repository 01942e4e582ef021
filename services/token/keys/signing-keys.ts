import type { Prisma, PrismaClient } from "../../gen/prisma/client.ts";
import { sqlScopeOf } from "../../shared/database/sql-scope.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { type AuditActor, recordAudit } from "../audit/audit-record.ts";
import { liveSessionsSigned as liveSessionsSignedStatement, revokeSigningKey } from "../sql/signing-keys.ts";
import { prismaQuery } from "../store/prisma-sql.ts";
import { decryptPrivateKey, encryptPrivateKey } from "./key-encryption.ts";
import {
  activatableAt,
  type KeyLifecyclePolicy,
  type KeyStatus,
  nextRotationAt,
  planRotation,
  type RotationOptions,
  retirableAt,
} from "./key-lifecycle.ts";
import { type KeyTransaction, withKeyLock } from "./key-lock.ts";
import { generateSigningKey, type PublicJwk, type SigningAlgorithm } from "./signing-key-material.ts";

/** Every column but the private key: what leaves this module. */
const PUBLIC_COLUMNS = {
  kid: true,
  algorithm: true,
  status: true,
  publicJwk: true,
  createdAt: true,
  activatedAt: true,
  retiringAt: true,
  retiredAt: true,
  revokedAt: true,
  revokedReason: true,
} as const satisfies Prisma.SigningKeySelect;

export type SigningKeyRecord = Prisma.SigningKeyGetPayload<{ select: typeof PUBLIC_COLUMNS }>;

export interface SigningKeysOptions {
  prisma: PrismaClient;
  masterKey: Buffer;
  policy: KeyLifecyclePolicy;
  now: () => number;
}

interface Activation {
  key: SigningKeyRecord;
  /** The key that was active before, now retiring. */
  previous: SigningKeyRecord | null;
}

interface KeyRevocation {
  key: SigningKeyRecord;
  /** Outbox event id of `key_revoked`; null when the key was revoked already. */
  eventId: string | null;
  /** Live sessions whose latest access token the key signed and that has not expired. */
  liveSessionsSigned: number;
  /** The key that took over signing, when the revoked key was the active one. */
  activated: SigningKeyRecord | null;
}

export interface RotationResult {
  staged: SigningKeyRecord | null;
  activated: SigningKeyRecord | null;
  retiring: SigningKeyRecord | null;
  retired: SigningKeyRecord[];
  /** When the next step is due under the schedule; null when nothing ever will be. */
  nextRotationAt: number | null;
  /**
   * When this step activated nothing: the newest staged key (the next to sign) and when it has
   * been published for the JWKS cache period, the earliest a forced step may activate it.
   */
  waiting: { key: SigningKeyRecord; activatableAt: number } | null;
}

/** Signing-key transitions, each one transaction under the key lock with its audit row. */
export interface SigningKeys {
  readonly policy: KeyLifecyclePolicy;
  list(options: { includeRetired: boolean }): Promise<SigningKeyRecord[]>;
  /** Generates a key in the STAGED state (published, not signing). */
  create(spec: { algorithm: SigningAlgorithm; rsaBits?: number }, by: AuditActor): Promise<SigningKeyRecord>;
  /** STAGED → ACTIVE; the active key becomes RETIRING. */
  activate(kid: string, options: { force: boolean }, by: AuditActor): Promise<Activation>;
  /** STAGED or expired RETIRING → RETIRED (out of the JWKS). */
  retire(kid: string, by: AuditActor): Promise<SigningKeyRecord>;
  /** Any state → REVOKED, with a `key_revoked` outbox event; an active key is replaced at once. */
  revoke(kid: string, reason: string, by: AuditActor): Promise<KeyRevocation>;
  /** One step of rotation (see {@link planRotation}). Idempotent. */
  rotate(
    options: RotationOptions & { algorithm?: SigningAlgorithm },
    by: AuditActor,
  ): Promise<RotationResult>;
}

function notFound(kid: string): GatehouseError {
  return new GatehouseError("not_found", `no signing key ${kid}`, { metadata: { kid } });
}

function wrongState(kid: string, message: string, metadata: Record<string, string> = {}): GatehouseError {
  return new GatehouseError("failed_precondition", message, { metadata: { kid, ...metadata } });
}

/** RSA modulus size of a public JWK, so a rotated RS256 key keeps its predecessor's size. */
function rsaBitsOf(jwk: PublicJwk): number {
  return jwk.n ? Buffer.from(jwk.n, "base64url").length * 8 : 2048;
}

export function createSigningKeys(options: SigningKeysOptions): SigningKeys {
  const { prisma, masterKey, policy, now } = options;
  const scope = sqlScopeOf(prisma);

  const find = (tx: KeyTransaction, kid: string) =>
    tx.signingKey.findUnique({ where: { kid }, select: PUBLIC_COLUMNS });

  async function insert(
    tx: KeyTransaction,
    spec: { algorithm: SigningAlgorithm; rsaBits?: number },
    status: "staged" | "active",
    at: Date,
    by: AuditActor,
    reason: string,
  ): Promise<SigningKeyRecord> {
    const key = await generateSigningKey(spec.algorithm, spec.rsaBits ?? 2048);
    const row = await tx.signingKey.create({
      data: {
        kid: key.kid,
        algorithm: key.algorithm,
        status,
        publicJwk: key.publicJwk as unknown as Prisma.InputJsonObject,
        privateKeyEnc: new Uint8Array(encryptPrivateKey(key.pkcs8, masterKey, key.kid)),
        createdAt: at,
        activatedAt: status === "active" ? at : null,
      },
      select: PUBLIC_COLUMNS,
    });
    key.pkcs8.fill(0);
    await recordAudit(tx, {
      ...by,
      at,
      action: "signing_key.create",
      targetType: "signing_key",
      targetId: key.kid,
      outcome: "success",
      details: { algorithm: key.algorithm, status, reason },
    });
    return row;
  }

  /** Makes `kid` the active key; the one active before becomes retiring (one-active index holds). */
  async function promote(
    tx: KeyTransaction,
    kid: string,
    at: Date,
    by: AuditActor,
    details: Record<string, unknown>,
  ): Promise<Activation> {
    // Refuse a key this master key cannot open rather than leave every replica without a signer.
    const sealed = await tx.signingKey.findUniqueOrThrow({ where: { kid }, select: { privateKeyEnc: true } });
    decryptPrivateKey(sealed.privateKeyEnc, masterKey, kid).fill(0);
    const current = await tx.signingKey.findFirst({ where: { status: "active" }, select: { kid: true } });
    const previous = current
      ? await tx.signingKey.update({
          where: { kid: current.kid },
          data: { status: "retiring", retiringAt: at },
          select: PUBLIC_COLUMNS,
        })
      : null;
    const key = await tx.signingKey.update({
      where: { kid },
      data: { status: "active", activatedAt: at },
      select: PUBLIC_COLUMNS,
    });
    await recordAudit(tx, {
      ...by,
      at,
      action: "signing_key.activate",
      targetType: "signing_key",
      targetId: kid,
      outcome: "success",
      details: { ...details, previous_kid: previous?.kid ?? null },
    });
    return { key, previous };
  }

  async function retireExpired(tx: KeyTransaction, kid: string, at: Date, by: AuditActor, reason: string) {
    const key = await tx.signingKey.update({
      where: { kid },
      data: { status: "retired", retiredAt: at },
      select: PUBLIC_COLUMNS,
    });
    await recordAudit(tx, {
      ...by,
      at,
      action: "signing_key.retire",
      targetType: "signing_key",
      targetId: kid,
      outcome: "success",
      details: { reason },
    });
    return key;
  }

  return {
    policy,

    list({ includeRetired }) {
      return prisma.signingKey.findMany({
        where: includeRetired ? {} : { status: { in: ["staged", "active", "retiring"] } },
        orderBy: [{ createdAt: "desc" }, { kid: "asc" }],
        select: PUBLIC_COLUMNS,
      });
    },

    create(spec, by) {
      return withKeyLock(prisma, (tx) =>
        insert(tx, spec, "staged", new Date(now()), by, "created by request"),
      );
    },

    activate(kid, { force }, by) {
      return withKeyLock(prisma, async (tx) => {
        const key = await find(tx, kid);
        if (!key) throw notFound(kid);
        if (key.status !== "staged") throw wrongState(kid, `signing key ${kid} is ${key.status}, not staged`);
        const t = now();
        const readyAt = activatableAt({ createdAt: key.createdAt.getTime() }, policy);
        if (!force && readyAt > t) {
          throw wrongState(
            kid,
            `signing key ${kid} has been published for less than the JWKS cache period; it may sign from ${new Date(readyAt).toISOString()}, or now with --force (ActivateSigningKey force) if every sidecar has fetched it`,
            { activatable_at: new Date(readyAt).toISOString() },
          );
        }
        return promote(tx, kid, new Date(t), by, { force, reason: "activated by request" });
      });
    },

    retire(kid, by) {
      return withKeyLock(prisma, async (tx) => {
        const key = await find(tx, kid);
        if (!key) throw notFound(kid);
        const t = now();
        if (key.status === "retiring") {
          const at = retirableAt({ retiringAt: key.retiringAt?.getTime() ?? t }, policy);
          if (at > t) {
            throw wrongState(
              kid,
              `signing key ${kid} may still have unexpired tokens; it can be retired from ${new Date(at).toISOString()}`,
              { retirable_at: new Date(at).toISOString() },
            );
          }
          return retireExpired(tx, kid, new Date(t), by, "retired by request");
        }
        if (key.status === "staged")
          return retireExpired(tx, kid, new Date(t), by, "withdrawn before signing");
        if (key.status === "active") {
          throw wrongState(kid, `signing key ${kid} is active: activate its successor first`);
        }
        throw wrongState(kid, `signing key ${kid} is already ${key.status}`);
      });
    },

    revoke(kid, reason, by) {
      return withKeyLock(prisma, async (tx) => {
        const key = await find(tx, kid);
        if (!key) throw notFound(kid);
        if (key.status === "revoked") return { key, eventId: null, liveSessionsSigned: 0, activated: null };
        const t = now();
        const at = new Date(t);
        const live = await prismaQuery(tx, scope, liveSessionsSignedStatement, kid, at, ttlSeconds());
        const liveSessionsSigned = live[0]?.n ?? 0;
        const rows = await prismaQuery(
          tx,
          scope,
          revokeSigningKey,
          kid,
          at,
          reason,
          new Date(t + policy.maxAccessTokenTtlMs),
          by.actor,
          by.requestId ?? null,
          key.status,
          liveSessionsSigned,
        );
        let activated: SigningKeyRecord | null = null;
        if (key.status === "active") {
          // Signing must go on: the newest staged key takes over at once, else a new one.
          const staged = await tx.signingKey.findFirst({
            where: { status: "staged" },
            orderBy: { createdAt: "desc" },
            select: { kid: true },
          });
          const successor =
            staged?.kid ??
            (
              await insert(
                tx,
                {
                  algorithm: key.algorithm as SigningAlgorithm,
                  rsaBits: rsaBitsOf(key.publicJwk as unknown as PublicJwk),
                },
                "staged",
                at,
                by,
                "replaces a revoked key",
              )
            ).kid;
          ({ key: activated } = await promote(tx, successor, at, by, {
            reason: `replaces revoked key ${kid}`,
          }));
        }
        const revoked = (await find(tx, kid))!;
        return { key: revoked, eventId: rows[0]?.event_id ?? null, liveSessionsSigned, activated };
      });
    },

    rotate(rotation, by) {
      return withKeyLock(prisma, async (tx) => {
        const t = now();
        const at = new Date(t);
        const rows = await tx.signingKey.findMany({
          where: { status: { in: ["staged", "active", "retiring"] } },
          select: PUBLIC_COLUMNS,
        });
        const plan = planRotation(rows.map(times), t, policy, rotation);
        const result: RotationResult = {
          staged: null,
          activated: null,
          retiring: null,
          retired: [],
          nextRotationAt: null,
          waiting: null,
        };
        for (const kid of plan.retire) {
          result.retired.push(await retireExpired(tx, kid, at, by, "every token it signed has expired"));
        }
        const active = rows.find((r) => r.status === "active");
        if (plan.stage) {
          const algorithm =
            rotation.algorithm ?? (active?.algorithm as SigningAlgorithm | undefined) ?? "EdDSA";
          const rsaBits = active ? rsaBitsOf(active.publicJwk as unknown as PublicJwk) : 2048;
          result.staged = await insert(tx, { algorithm, rsaBits }, "staged", at, by, "scheduled rotation");
        }
        const toActivate = plan.noActiveKey ? (plan.activate ?? result.staged?.kid ?? null) : plan.activate;
        if (toActivate) {
          const reason = plan.noActiveKey ? "no active key" : "scheduled rotation";
          const { key, previous } = await promote(tx, toActivate, at, by, { reason, force: rotation.force });
          result.activated = key;
          result.retiring = previous;
        }
        const after = await tx.signingKey.findMany({
          where: { status: { in: ["staged", "active", "retiring"] } },
          select: PUBLIC_COLUMNS,
        });
        result.nextRotationAt = nextRotationAt(after.map(times), policy, rotation);
        const next = after
          .filter((r) => r.status === "staged")
          .sort((a, b) => +b.createdAt - +a.createdAt)[0];
        if (!result.activated && next) {
          result.waiting = {
            key: next,
            activatableAt: activatableAt({ createdAt: next.createdAt.getTime() }, policy),
          };
        }
        return result;
      });
    },
  };

  function ttlSeconds(): number {
    return Math.ceil(policy.maxAccessTokenTtlMs / 1000);
  }
}

function times(r: SigningKeyRecord) {
  return {
    kid: r.kid,
    status: r.status as KeyStatus,
    createdAt: r.createdAt.getTime(),
    activatedAt: r.activatedAt?.getTime() ?? null,
    retiringAt: r.retiringAt?.getTime() ?? null,
  };
}
