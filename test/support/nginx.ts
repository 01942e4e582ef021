import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.ts";

export const NGINX_BINARY = "/usr/sbin/nginx";

/** Identity headers the sidecar's `/authz` answers with, copied onto the proxied request. */
const IDENTITY_HEADERS = [
  "x-gatehouse-subject",
  "x-gatehouse-client-id",
  "x-gatehouse-scopes",
  "x-gatehouse-session-id",
  "x-gatehouse-tenant",
  "x-gatehouse-actor",
];

export interface NginxSite {
  /** The app nginx proxies to once `/authz` said yes. */
  appPort: number;
}

export interface RunningNginx {
  /** One port per site, in the order given. */
  ports: number[];
  /** nginx's error log so far (for failure messages). */
  errorLog(): string;
  stop(): Promise<void>;
}

/**
 * A private nginx (temp prefix directory, foreground, loopback ports) in front of apps, guarding every
 * request with `auth_request` to the sidecar's forward-auth `/authz`, as the nginx documentation
 * wires an external authorizer: the original URI and method in `X-Original-URI` / `X-Original-Method`,
 * the identity headers of the answer copied onto the proxied request (replacing any the client sent;
 * an empty value makes nginx drop the header). The subrequest is a bodiless GET whatever the
 * original method, which travels in `X-Original-Method`.
 */
export async function startNginx(controlPort: number, sites: NginxSite[]): Promise<RunningNginx> {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-nginx-"));
  const ports: number[] = [];
  for (const _ of sites) ports.push(await freePort());
  const copy = IDENTITY_HEADERS.map((h) => {
    const v = `$gh_${h.slice("x-gatehouse-".length).replace(/-/g, "_")}`;
    return `      auth_request_set ${v} $upstream_http_${h.replace(/-/g, "_")};\n      proxy_set_header ${h} ${v};`;
  }).join("\n");
  const servers = sites
    .map(
      (site, i) => `
  server {
    listen 127.0.0.1:${ports[i]};
    location = /_gatehouse_authz {
      internal;
      proxy_pass http://127.0.0.1:${controlPort}/authz;
      proxy_method GET;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
    }
    location / {
      auth_request /_gatehouse_authz;
${copy}
      proxy_pass http://127.0.0.1:${site.appPort};
    }
  }`,
    )
    .join("\n");
  const conf = `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${servers}
}
`;
  writeFileSync(join(dir, "nginx.conf"), conf);
  const child: ChildProcess = spawn(
    NGINX_BINARY,
    ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log"), "-g", "daemon off;"],
    {
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  // nginx outlives a test worker that dies without afterAll; never leave it running.
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => {
      process.removeListener("exit", killOnExit);
      resolve();
    }),
  );
  const errorLog = () => {
    try {
      return stderr + readFileSync(join(dir, "error.log"), "utf8");
    } catch {
      return stderr;
    }
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGQUIT");
      const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.race([
      Promise.all(ports.map((p) => waitForPort(p))),
      exited.then(() => {
        throw new Error(`nginx exited at start:\n${errorLog()}`);
      }),
    ]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { ports, errorLog, stop };
}

async function waitForPort(port: number, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: "127.0.0.1", port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nginx did not listen on ${port} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
