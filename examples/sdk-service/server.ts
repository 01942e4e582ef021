/**
 * An example service built on the Gatehouse SDK: the `orders` API, guarded in process by
 * `gatehouse/express`, and a small sign-in front that starts sessions with `gatehouse/client` and
 * calls the API on the user's behalf with an access token the client keeps fresh.
 *
 * Run it from this repository with `node --conditions=gatehouse-source --import tsx
 * examples/sdk-service/server.ts` (the sources), or anywhere the package is installed, compiled, with
 * plain `node`. Settings: see ./settings.ts.
 */
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import express, { type NextFunction, type Request, type Response } from "express";
import { createTokenClient, type TokenSession } from "gatehouse/client";
import { gatehouseAuth } from "gatehouse/express";
import { createGatehouseVerifier, GatehouseError } from "gatehouse/verify";
import { readSettings } from "./settings.ts";

const settings = readSettings(process.env);
const verifier = createGatehouseVerifier({
  issuer: settings.issuer,
  audiences: ["orders"],
  jwksUrl: `${settings.tokenServiceHttpUrl}/.well-known/jwks.json`,
  revocation:
    settings.redisUrl === undefined ? "none" : { redisUrl: settings.redisUrl, stream: settings.stream },
});
const tokens = createTokenClient({
  baseUrl: settings.tokenServiceGrpcUrl,
  credentials: { clientId: settings.clientId, clientSecret: settings.clientSecret },
});
/** Sessions this front holds for its users, by session id. A real one would keep them in its store. */
const sessions = new Map<string, TokenSession>();

const app = express();

app.get(
  "/orders",
  gatehouseAuth({ verifier, requirement: { scopes: { allOf: ["orders:read"] } } }),
  (req, res) => {
    res.json({ user: req.auth?.subject, orders: [{ id: "o-1", total: 42 }] });
  },
);

// The user has signed in (password, passkey...) before this point; the example trusts the name.
app.post("/login", express.json(), async (req: Request, res: Response) => {
  const user = String(req.body?.user ?? "");
  const issued = await tokens.issue({ subject: user, audience: ["orders"], scopes: ["orders:read"] });
  sessions.set(issued.sessionId, tokens.session(issued));
  res.json({ sessionId: issued.sessionId });
});

app.get("/sessions/:id/orders", async (req: Request, res: Response) => {
  const session = sessions.get(String(req.params.id));
  if (session === undefined) {
    res.status(404).json({ error: "not_found" });
    return;
  }
  const answer = await fetch(`${baseUrl()}/orders`, {
    headers: { authorization: `Bearer ${await session.accessToken()}` },
  });
  res.status(answer.status).json(await answer.json());
});

// Token-service refusals carry a stable code; anything else is a bug and says no more than that.
app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
  if (err instanceof GatehouseError) {
    res.status(err.code === "unavailable" ? 503 : 400).json({ error: err.code });
    return;
  }
  res.status(500).json({ error: "internal" });
});

await verifier.ready();
const server = app.listen(settings.port, settings.host);
await once(server, "listening");
const baseUrl = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
console.log(
  JSON.stringify({ msg: "sdk example service listening", port: (server.address() as AddressInfo).port }),
);

process.once("SIGTERM", () => {
  server.close(() => {
    tokens.close();
    void verifier.close().then(() => process.exit(0));
  });
  server.closeAllConnections();
});
