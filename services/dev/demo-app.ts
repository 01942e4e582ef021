import http from "node:http";
import type { AddressInfo } from "node:net";
import { IDENTITY_HEADERS } from "../sidecar/control/identity-headers.ts";

/** The identity the sidecar passed in its `x-gatehouse-*` headers. */
interface DemoIdentity {
  subject: string;
  clientId: string;
  scopes: string[];
  sessionId?: string;
  tenant?: string;
}

export interface DemoAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** Paths the demo route policy (demo-policy.yaml) lets through without a token. */
export const DEMO_PUBLIC_PREFIX = "/public";

type Headers = Readonly<Record<string, string | string[] | undefined>>;

const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

/** The identity in the request's headers, or undefined when the sidecar set none (a public route, or a direct call). */
function identityFromHeaders(headers: Headers): DemoIdentity | undefined {
  const subject = one(headers[IDENTITY_HEADERS.subject]);
  if (subject === undefined) return undefined;
  const scopes = one(headers[IDENTITY_HEADERS.scopes]) ?? "";
  const sessionId = one(headers[IDENTITY_HEADERS.sessionId]);
  const tenant = one(headers[IDENTITY_HEADERS.tenant]);
  return {
    subject,
    clientId: one(headers[IDENTITY_HEADERS.clientId]) ?? "",
    scopes: scopes === "" ? [] : scopes.split(" "),
    ...(sessionId === undefined ? {} : { sessionId }),
    ...(tenant === undefined ? {} : { tenant }),
  };
}

/**
 * What the demo app answers. Like any app behind a Gatehouse sidecar it verifies nothing itself: it
 * trusts the identity headers, which only the sidecar can set (callers' copies are stripped). So a
 * protected path reached without them was called around the sidecar, and says so.
 */
export function answerDemoRequest(method: string, path: string, headers: Headers): DemoAnswer {
  const identity = identityFromHeaders(headers);
  const pathname = path.split("?", 1)[0] ?? "/";
  if (pathname === DEMO_PUBLIC_PREFIX || pathname.startsWith(`${DEMO_PUBLIC_PREFIX}/`)) {
    return {
      status: 200,
      body: { hello: "world", public: true, note: "this route needs no token (see the route policy)" },
    };
  }
  if (identity === undefined) {
    return {
      status: 401,
      body: {
        error: "no_identity",
        message: "no x-gatehouse-* identity headers: call this app through the sidecar",
      },
    };
  }
  return { status: 200, body: { hello: identity.subject, method, path: pathname, identity } };
}

export interface DemoApp {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

/** Starts the demo app on `host:port` (port 0: any free port). */
export async function startDemoApp(options: { host?: string; port?: number } = {}): Promise<DemoApp> {
  const host = options.host ?? "127.0.0.1";
  const server = http.createServer((req, res) => {
    const answer = answerDemoRequest(req.method ?? "GET", req.url ?? "/", req.headers);
    const body = `${JSON.stringify(answer.body, null, 2)}\n`;
    res.writeHead(answer.status, { "content-type": "application/json", "cache-control": "no-store" });
    res.end(body);
    // Drain any request body so keep-alive connections stay usable.
    req.resume();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    port,
    url: `http://${host}:${port}`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
