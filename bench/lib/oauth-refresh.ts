/**
 * The refresh grant over `POST /oauth2/token` (P10: OAuth refresh ÷ RPC Refresh ≥ 0.8), driven
 * like the RPC Refresh figure beside it: separate driver processes, `concurrency` sessions each
 * refreshed in a loop, one client authenticated with `client_secret_basic`, HTTP/1.1 keep-alive.
 * Sessions start over Connect/JSON `Issue` (there is no OAuth grant that starts one).
 *
 * Self-contained: bench/token-service.ts calls {@link measureOAuthRefresh} after its RPC Refresh
 * run and reports {@link oauthRefreshRows} against that run's figure.
 */
import { randomUUID } from "node:crypto";
import http from "node:http";
import { fileURLToPath } from "node:url";
import { basicAuthorization } from "../../services/token/clients/basic-credentials.ts";
import { type BenchRow, row } from "./bench-results.ts";
import { type DriverResult, type DriversResult, runForkedDrivers } from "./forked-drivers.ts";

const here = fileURLToPath(import.meta.url);

interface OAuthDriverTask {
  httpPort: number;
  clientId: string;
  secret: string;
  slots: number;
  durationMs: number;
}

function postOnce(
  agent: http.Agent,
  port: number,
  path: string,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: "POST",
        agent,
        headers: { ...headers, "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

async function runOAuthDriver(task: OAuthDriverTask): Promise<DriverResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: task.slots });
  const authorization = basicAuthorization(task.clientId, task.secret);
  const tokens: string[] = [];
  for (let s = 0; s < task.slots; s++) {
    const issued = await postOnce(
      agent,
      task.httpPort,
      "/gatehouse.v1.TokenService/Issue",
      { authorization, "content-type": "application/json" },
      JSON.stringify({
        subject: `oauth-bench-${randomUUID()}`,
        audience: ["orders"],
        scopes: ["orders:read"],
      }),
    );
    if (issued.status !== 200) throw new Error(`Issue failed: ${issued.status} ${issued.text}`);
    tokens[s] = (JSON.parse(issued.text) as { refreshToken: string }).refreshToken;
  }
  const headers = { authorization, "content-type": "application/x-www-form-urlencoded" };
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let calls = 0;
  const end = performance.now() + task.durationMs;
  await Promise.all(
    Array.from({ length: task.slots }, async (_, s) => {
      while (performance.now() < end) {
        const t0 = performance.now();
        const body = `grant_type=refresh_token&refresh_token=${encodeURIComponent(tokens[s]!)}`;
        const res = await postOnce(agent, task.httpPort, "/oauth2/token", headers, body).catch(
          (err: Error) => ({ status: 0, text: err.message }),
        );
        if (res.status === 200) {
          tokens[s] = (JSON.parse(res.text) as { refresh_token: string }).refresh_token;
          calls++;
          latencies.push(performance.now() - t0);
        } else {
          const key =
            res.status === 0
              ? "network"
              : `${res.status} ${(JSON.parse(res.text) as { error?: string }).error}`;
          errors[key] = (errors[key] ?? 0) + 1;
        }
      }
    }),
  );
  agent.destroy();
  return { calls, errors, latenciesMs: latencies };
}

if (process.argv[2] === "--oauth-driver") {
  process.once("message", async (task: OAuthDriverTask) => {
    const result = await runOAuthDriver(task);
    process.send!(result, () => process.exit(0));
  });
}

/** Refresh grants per second over /oauth2/token from `drivers` processes sharing `concurrency` sessions. */
export async function measureOAuthRefresh(options: {
  httpPort: number;
  clientId: string;
  secret: string;
  concurrency: number;
  drivers: number;
  durationMs: number;
}): Promise<DriversResult> {
  return runForkedDrivers({
    file: here,
    role: "--oauth-driver",
    drivers: options.drivers,
    concurrency: options.concurrency,
    durationMs: options.durationMs,
    taskFor: (slots): OAuthDriverTask => ({
      httpPort: options.httpPort,
      clientId: options.clientId,
      secret: options.secret,
      slots,
      durationMs: options.durationMs,
    }),
  });
}

/** The rows: the OAuth refresh grant against RPC Refresh measured in the same run (P10 target 0.8). */
export function oauthRefreshRows(
  oauth: DriversResult,
  rpcRefresh: { perSecond: number; p99: number },
): BenchRow[] {
  return [
    row("oauth_refresh_per_s", oauth.perSecond, "calls/s", rpcRefresh.perSecond),
    row("oauth_refresh_p50_ms", oauth.p50, "ms"),
    row("oauth_refresh_p99_ms", oauth.p99, "ms", rpcRefresh.p99),
  ];
}
