import { create, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { TokenService } from "../../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import { grpcServiceDefinition } from "../../../services/shared/rpc/index.ts";
import { basicAuthorization } from "../../../services/token/clients/basic-credentials.ts";
import { decodeFailure, type GrpcFailure } from "../../support/token-clients.ts";
import { rememberSecrets } from "./run-directory.ts";

type Methods = (typeof TokenService)["method"];

/** One call's result: the response, or the failure with its gRPC status name and ErrorInfo reason. */
export type Outcome<T> =
  | { ok: true; value: T; ms: number }
  | { ok: false; failure: GrpcFailure; status: string; ms: number };

export type TokenCalls = {
  [M in keyof Methods]: (
    req: MessageInitShape<Methods[M]["input"]>,
  ) => Promise<Outcome<MessageShape<Methods[M]["output"]>>>;
} & { close(): void };

const STATUS_NAMES = Object.fromEntries(
  Object.entries(grpc.status)
    .filter(([, v]) => typeof v === "number")
    .map(([k, v]) => [v, k]),
) as Record<number, string>;

const statusName = (code: number) => STATUS_NAMES[code] ?? String(code);

/**
 * A grpc-js TokenService client as an internal service would hold one, except that every call has a
 * deadline (a call that hangs is a failure of its own, DEADLINE_EXCEEDED, not a stuck test) and every
 * token that crosses it, either way, is remembered for the log check.
 */
export function tokenCalls(
  port: number,
  credentials: { id: string; secret: string },
  { deadlineMs = 15_000 }: { deadlineMs?: number } = {},
): TokenCalls {
  rememberSecrets(credentials.secret);
  const Ctor = grpc.makeGenericClientConstructor(grpcServiceDefinition(TokenService), TokenService.name);
  const client = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const auth = basicAuthorization(credentials.id, credentials.secret);
  const calls: Record<string, unknown> = {};
  for (const method of TokenService.methods) {
    const fn = (client as unknown as Record<string, (...args: unknown[]) => void>)[method.localName]!;
    calls[method.localName] = (init: Record<string, unknown>) =>
      new Promise((resolve) => {
        remember(init);
        const md = new grpc.Metadata();
        md.set("authorization", auth);
        const started = performance.now();
        fn.call(
          client,
          create(method.input as DescMessage, init as never),
          md,
          { deadline: Date.now() + deadlineMs },
          (err: grpc.ServiceError | null, res: Record<string, unknown>) => {
            const ms = performance.now() - started;
            if (err) {
              resolve({ ok: false, failure: decodeFailure(err), status: statusName(err.code), ms });
            } else {
              remember(res);
              resolve({ ok: true, value: res, ms });
            }
          },
        );
      });
  }
  return { ...(calls as Omit<TokenCalls, "close">), close: () => client.close() };
}

function remember(message: Record<string, unknown>): void {
  for (const key of ["accessToken", "refreshToken", "token"]) {
    const v = message[key];
    if (typeof v === "string") rememberSecrets(v);
  }
  const target = message.target as { value?: unknown } | undefined;
  if (target && typeof target.value === "string" && target.value.length > 40) rememberSecrets(target.value);
}

/** Counts calls by outcome (`OK`, or `<STATUS>/<reason>`) for the scenario's report. */
export class CallTally {
  readonly counts = new Map<string, number>();
  calls = 0;

  add(outcome: Outcome<unknown>): void {
    this.calls++;
    const key = outcome.ok ? "OK" : `${outcome.status}/${outcome.failure.reason ?? "-"}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  get failures(): number {
    return this.calls - (this.counts.get("OK") ?? 0);
  }

  /** Outcome keys other than OK whose status is not in `allowed`. */
  unexpected(allowed: readonly string[]): string[] {
    return [...this.counts.keys()].filter((k) => k !== "OK" && !allowed.includes(k.split("/")[0]!));
  }

  toString(): string {
    return [...this.counts.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `${k} ${n}`)
      .join(", ");
  }
}
