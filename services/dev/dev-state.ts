import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import type { Database } from "../shared/database/index.ts";
import {
  generateClientSecret,
  hashClientSecret,
  verifyClientSecret,
} from "../token/clients/client-secret.ts";

/** The audience the demo client may ask for and the dev sidecar requires (see demo-policy.yaml). */
export const DEMO_AUDIENCE = "demo-api";

export const DEV_CLIENTS = {
  admin: { id: "dev-admin", name: "Dev admin", roles: ["admin"] },
  demo: { id: "demo-app", name: "Demo app", roles: ["issuer", "revoker", "introspector"] },
} as const;

type DevClientName = keyof typeof DEV_CLIENTS;

/** What `gatehouse dev` keeps between runs: the dev master key and the demo clients' secrets. */
export interface DevState {
  masterKey: string;
  clients: Record<DevClientName, { id: string; secret: string }>;
}

const DEV_STATE_FILE = "dev-state.json";

export function newDevState(): DevState {
  return {
    masterKey: randomBytes(32).toString("base64"),
    clients: {
      admin: { id: DEV_CLIENTS.admin.id, secret: generateClientSecret() },
      demo: { id: DEV_CLIENTS.demo.id, secret: generateClientSecret() },
    },
  };
}

/**
 * The dev state in `dataDir`, created on first use. Plain files, readable by the owner only: the
 * right trade for a laptop demo and never the way to run in production (there the master key comes
 * from a secret store and clients are made with `gatehouse clients create`).
 */
export function loadOrCreateDevState(dataDir: string): DevState {
  const file = resolve(dataDir, DEV_STATE_FILE);
  if (existsSync(file)) return JSON.parse(readFileSync(file, "utf8")) as DevState;
  const state = newDevState();
  writeFileSync(file, JSON.stringify(state, null, 2), { mode: 0o600 });
  return state;
}

/**
 * Makes sure both dev clients exist and accept the secrets in `state`. A client whose stored secret
 * no longer matches (its state file was deleted, or the database outlived it) gets the state's
 * secret again, so the banner's credentials always work.
 */
export async function ensureDevClients(db: Database, state: DevState): Promise<void> {
  for (const which of Object.keys(DEV_CLIENTS) as DevClientName[]) {
    const { id, secret } = state.clients[which];
    const existing = await db.prisma.client.findUnique({ where: { id }, select: { secretHash: true } });
    if (existing) {
      if (existing.secretHash === null || !(await verifyClientSecret(secret, existing.secretHash))) {
        await db.prisma.client.update({
          where: { id },
          data: { secretHash: await hashClientSecret(secret) },
        });
      }
      continue;
    }
    await db.prisma.client.create({
      data: {
        id,
        name: DEV_CLIENTS[which].name,
        secretHash: await hashClientSecret(secret),
        roles: [...DEV_CLIENTS[which].roles],
        allowedAudiences: [DEMO_AUDIENCE],
        allowedScopes: ["profile", "orders:read", "orders:write"],
        allowedClaims: ["name"],
      },
    });
  }
}
