/** The example service's settings, read once at start-up; a missing one stops it with its name. */
export interface ExampleSettings {
  host: string;
  port: number;
  issuer: string;
  /** The token service's HTTP port (JWKS): `GATEHOUSE_TOKEN_SERVICE_URL`. */
  tokenServiceHttpUrl: string;
  /** Its gRPC port (Issue, Refresh): `GATEHOUSE_TOKEN_SERVICE_GRPC_URL`. */
  tokenServiceGrpcUrl: string;
  clientId: string;
  clientSecret: string;
  /** Unset: no revocation stream (`revocation: "none"`), so revoked tokens pass until they expire. */
  redisUrl: string | undefined;
  stream: string;
}

export function readSettings(env: NodeJS.ProcessEnv): ExampleSettings {
  const required = (name: string): string => {
    const value = env[name];
    if (value === undefined || value === "") throw new Error(`${name} is required`);
    return value;
  };
  const port = Number(env.PORT ?? 8080);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new Error("PORT must be a port number");
  return {
    host: env.HOST ?? "127.0.0.1",
    port,
    issuer: required("GATEHOUSE_ISSUER"),
    tokenServiceHttpUrl: required("GATEHOUSE_TOKEN_SERVICE_URL").replace(/\/+$/, ""),
    tokenServiceGrpcUrl: required("GATEHOUSE_TOKEN_SERVICE_GRPC_URL"),
    clientId: required("GATEHOUSE_CLIENT_ID"),
    clientSecret: required("GATEHOUSE_CLIENT_SECRET"),
    redisUrl: env.REDIS_URL === "" ? undefined : env.REDIS_URL,
    stream: env.GATEHOUSE_REVOCATION_STREAM ?? "gatehouse:revocations",
  };
}
