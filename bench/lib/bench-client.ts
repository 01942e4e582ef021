import { createDatabase, migrate } from "../../services/shared/database/index.ts";
import { generateClientSecret, hashClientSecret } from "../../services/token/clients/client-secret.ts";

/**
 * Migrates `schema` and registers the client every token-service bench calls as: id `bench`, an
 * issuer for audience `orders` with scope `orders:read`. Returns its secret.
 */
export async function createBenchSchema(
  url: string,
  schema: string,
): Promise<{ clientId: string; secret: string }> {
  await migrate({ kind: "postgres", url, schema });
  const setup = await createDatabase({ kind: "postgres", url, schema });
  const secret = generateClientSecret();
  try {
    await setup.prisma.client.create({
      data: {
        id: "bench",
        name: "bench",
        secretHash: await hashClientSecret(secret),
        roles: ["issuer"],
        allowedAudiences: ["orders"],
        allowedScopes: ["orders:read"],
      },
    });
  } finally {
    await setup.close();
  }
  return { clientId: "bench", secret };
}
