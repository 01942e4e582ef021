import { DEMO_PUBLIC_PREFIX } from "./demo-app.ts";
import { DEMO_AUDIENCE, DEV_CLIENTS, type DevState } from "./dev-state.ts";

/** Where everything `gatehouse dev` started is listening, with the real bound ports. */
export interface DevUrls {
  /** Native gRPC, `host:port`. */
  grpc: string;
  /** Connect/JSON, gRPC-Web, JWKS, health: `http://host:port`. */
  http: string;
  /** The sidecar's reverse proxy in front of the demo app. */
  proxy: string;
  /** The sidecar's control port (ext_authz gRPC, /authz, health, metrics). */
  control: string;
  /** The demo app itself, bypassing the sidecar. */
  app: string;
  /** The token service's admin plane (AdminService over gRPC, Connect, gRPC-Web; /metrics), `host:port`. */
  admin: string;
}

export interface BannerInput {
  urls: DevUrls;
  state: DevState;
  /** Where data lives, for people: a folder, "in memory", or the Postgres it uses. */
  data: string;
  /** How revocations reach the sidecar, for people. */
  revocations: string;
  issuer: string;
  policyFile: string;
}

/** One step of the walk-through: what it shows, the one command line, what to expect. */
export interface WalkthroughStep {
  title: string;
  command: string;
  expect: string;
}

/** The path the walk-through calls through the sidecar. */
const DEMO_PATH = "/hello";

/**
 * The copy-paste walk-through: issue a token for alice, call the demo app through the sidecar,
 * revoke the session, call again. One command line per step, for bash or zsh, curl and node only;
 * shell variables (ISSUED, TOKEN, SESSION) carry values between steps.
 */
export function walkthrough(urls: DevUrls, state: DevState): WalkthroughStep[] {
  const { id, secret } = state.clients.demo;
  // curl -u sends `authorization: Basic base64(id:secret)`, the caller authentication every RPC takes.
  const rpc = (method: string, body: string) =>
    `curl -s -u '${id}:${secret}' -H 'content-type: application/json' -d ${body} ${urls.http}/gatehouse.v1.TokenService/${method}`;
  const field = (name: string) => `node -pe 'JSON.parse(process.argv[1]).${name}' "$ISSUED"`;
  const issueBody = JSON.stringify({ subject: "alice", audience: [DEMO_AUDIENCE], scopes: ["profile"] });
  const callApp = `curl -s -i -H "authorization: Bearer $TOKEN" ${urls.proxy}${DEMO_PATH}`;
  return [
    {
      title: "Issue a token for alice (keeps the access token and session id in TOKEN and SESSION)",
      command: `ISSUED=$(${rpc("Issue", `'${issueBody}'`)}); echo "$ISSUED"; TOKEN=$(${field("accessToken")}); SESSION=$(${field("sessionId")})`,
      expect: "JSON with accessToken, refreshToken and sessionId",
    },
    {
      title: "Call the demo app through the sidecar",
      command: callApp,
      expect: "HTTP/1.1 200 and the identity the app saw (subject alice)",
    },
    {
      title: "Revoke alice's session",
      command: rpc("Revoke", `"{\\"sessionId\\":\\"$SESSION\\",\\"reason\\":\\"demo\\"}"`),
      expect: '{"sessionsRevoked":1, ... "propagated":true}',
    },
    {
      title: "Call again with the same token",
      command: callApp,
      expect: 'HTTP/1.1 401, www-authenticate: Bearer ... error_description="session_revoked"',
    },
  ];
}

/** The banner printed once everything is ready. */
export function renderBanner(input: BannerInput): string {
  const { urls, state } = input;
  const demo = state.clients.demo;
  const admin = state.clients.admin;
  const steps = walkthrough(urls, state);
  const lines = [
    "",
    "  Gatehouse dev is ready",
    "",
    `  token service   gRPC          ${urls.grpc}`,
    `                  Connect/JSON  ${urls.http}   (also gRPC-Web)`,
    `                  JWKS          ${urls.http}/.well-known/jwks.json`,
    `                  health        ${urls.http}/readyz   (gRPC: grpc.health.v1 on ${urls.grpc})`,
    `                  admin plane   ${urls.admin}   (AdminService gRPC/Connect, http://${urls.admin}/metrics)`,
    `                  issuer        ${input.issuer}`,
    `  sidecar         proxy         ${urls.proxy}   -> demo app ${urls.app}`,
    `                  control       ${urls.control}   (ext_authz gRPC, /authz, /readyz, /metrics)`,
    `                  policy        ${input.policyFile}`,
    `  revocations     ${input.revocations}`,
    `  data            ${input.data}`,
    "",
    `  demo client     ${demo.id}   secret ${demo.secret}`,
    `                  roles ${DEV_CLIENTS.demo.roles.join(", ")}; audience ${DEMO_AUDIENCE}`,
    `  admin client    ${admin.id}   secret ${admin.secret}`,
    "",
    "  Try it: paste each command line into a shell (bash or zsh); variables carry over.",
    "",
  ];
  steps.forEach((step, i) => {
    lines.push(`  # ${i + 1}. ${step.title}`, `  ${step.command}`, `  #    -> ${step.expect}`, "");
  });
  lines.push(
    `  # A public route (demo policy) passes without a token:  curl -s ${urls.proxy}${DEMO_PUBLIC_PREFIX}`,
    `  # Operate it as the admin client:  GATEHOUSE_SERVER=${urls.grpc} GATEHOUSE_ADMIN_SERVER=${urls.admin} GATEHOUSE_CLIENT_ID=${admin.id} GATEHOUSE_CLIENT_SECRET='${admin.secret}' node bin/gatehouse.mjs clients list`,
    "",
    "  Ctrl-C stops everything.",
    "",
  );
  return `${lines.join("\n")}\n`;
}
