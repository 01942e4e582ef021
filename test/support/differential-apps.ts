import type { IncomingHttpHeaders, Server } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import Fastify, { type FastifyInstance } from "fastify";

/**
 * Real Express 5 and Fastify apps as the upstreams of the guard's differential tests. Every app has
 * the same handlers, each guarded by the policy rule of the same name (see {@link HANDLER_RULE}),
 * and each handler writes down that it ran: which app, which handler, the URL the app received and
 * every header, under the request's `x-probe` id. Tests judge the guard by this record, not by the
 * status code the client saw.
 */

export type HandlerName =
  | "admin"
  | "admin-panel"
  | "internal"
  | "public"
  | "item"
  | "grpc-delete"
  | "catch-all";

/** The policy rule that guards each handler; `default` is the policy's default (any valid token). */
export type RuleName = "admin" | "internal" | "public" | "items" | "grpc-delete" | "default";

export const HANDLER_RULE: Record<HandlerName, RuleName> = {
  admin: "admin",
  "admin-panel": "admin",
  internal: "internal",
  public: "public",
  item: "items",
  "grpc-delete": "grpc-delete",
  "catch-all": "default",
};

/** The sidecar policy the apps are written against: one rule per handler, gRPC rule first. */
export const DIFFERENTIAL_POLICY = `
default: { audiences: [orders] }
rules:
  - name: grpc-delete
    match: { grpc: /demo.v1.DemoService/DeleteItem }
    scopes: { allOf: [orders:write] }
  - name: public
    match: { prefix: /public/ }
    public: true
  - name: admin
    match: { prefix: /admin }
    scopes: { allOf: [admin] }
  - name: internal
    match: { prefix: /internal }
    scopes: { allOf: [internal] }
  - name: items
    match: { glob: /api/items/* }
    scopes: { allOf: [items:read] }
`;

export interface HandlerRun {
  app: string;
  handler: HandlerName;
  method: string;
  /** The request target exactly as the app received it. */
  url: string;
  headers: IncomingHttpHeaders;
}

/** What the apps' handlers ran, by `x-probe` id (a probe that reached no handler has no entry). */
export class RunLog {
  private readonly runs = new Map<string, HandlerRun[]>();

  record(probe: string | string[] | undefined, run: HandlerRun): void {
    const id = Array.isArray(probe) ? probe.join(",") : (probe ?? "(no probe id)");
    const list = this.runs.get(id) ?? [];
    list.push(run);
    this.runs.set(id, list);
  }

  of(probe: string): HandlerRun[] {
    return this.runs.get(probe) ?? [];
  }
}

export interface RunningApp {
  name: string;
  port: number;
  close(): Promise<void>;
}

const ROUTES: [HandlerName, string][] = [
  ["admin", "/admin"],
  ["admin-panel", "/admin/panel"],
  ["internal", "/internal"],
  ["item", "/api/items/:id"],
];

/** Express 5 with its defaults: case-insensitive routing, a trailing slash ignored. */
export async function startExpressApp(log: RunLog, name = "express"): Promise<RunningApp> {
  const app = express();
  const handler = (handlerName: HandlerName) => (req: express.Request, res: express.Response) => {
    log.record(req.headers["x-probe"], {
      app: name,
      handler: handlerName,
      method: req.method,
      url: req.originalUrl,
      headers: req.headers,
    });
    res.json({ app: name, handler: handlerName });
  };
  for (const [handlerName, path] of ROUTES) app.all(path, handler(handlerName));
  // `/public/` too: the policy's `/public/` prefix covers it, as Fastify's `/public/*` does.
  app.all("/public/{*rest}", handler("public"));
  app.post("/demo.v1.DemoService/DeleteItem", handler("grpc-delete"));
  app.use(handler("catch-all"));
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  return {
    name,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Fastify with the given router options: its defaults (case-sensitive, exact trailing slash), or
 * the lenient ones real apps often set. Any content type is accepted, so a body the app cannot parse
 * never stops a request before its handler.
 */
export async function startFastifyApp(
  log: RunLog,
  name: string,
  routerOptions: {
    ignoreTrailingSlash?: boolean;
    caseSensitive?: boolean;
    ignoreDuplicateSlashes?: boolean;
  } = {},
): Promise<RunningApp> {
  const app: FastifyInstance = Fastify({ logger: false, routerOptions });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer" }, (_req, body, done) => done(null, body));
  const handler =
    (handlerName: HandlerName) =>
    async (req: { raw: { url?: string; method?: string; headers: IncomingHttpHeaders } }) => {
      log.record(req.raw.headers["x-probe"], {
        app: name,
        handler: handlerName,
        method: req.raw.method ?? "",
        url: req.raw.url ?? "",
        headers: req.raw.headers,
      });
      return { app: name, handler: handlerName };
    };
  for (const [handlerName, path] of ROUTES) app.all(path, handler(handlerName));
  // `/public` too: with ignoreTrailingSlash, Fastify routes `/public/` (which the policy's `/public/`
  // prefix covers) as `/public`, which `/public/*` does not match.
  app.all("/public", handler("public"));
  app.all("/public/*", handler("public"));
  app.post("/demo.v1.DemoService/DeleteItem", handler("grpc-delete"));
  app.setNotFoundHandler(handler("catch-all"));
  await app.listen({ port: 0, host: "127.0.0.1" });
  return {
    name,
    port: (app.server.address() as AddressInfo).port,
    close: () => app.close(),
  };
}
