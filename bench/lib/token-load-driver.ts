/**
 * One load-driver process for the token service (forked by token-load.ts): gRPC calls on bare HTTP/2
 * (grpc-h2-client.ts) to Issue or Refresh in a closed loop, `slots` calls in flight. Protocol with the
 * coordinator, once per task: task → "ready" (after any preparation, e.g. issuing the tokens it will
 * refresh) → "go" → result. The process serves task after task until "exit", remembering the current
 * token of every preloaded session it refreshed, so a later task does not present a spent one (that
 * is reuse).
 */
import { randomUUID } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  IssueRequestSchema,
  IssueResponseSchema,
  RefreshRequestSchema,
  RefreshResponseSchema,
} from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import { basicAuthorization } from "../../services/token/clients/basic-credentials.ts";
import { connectGrpcH2, GrpcCallError } from "./grpc-h2-client.ts";
import { preloadedRefreshToken } from "./soak-preload.ts";
import type { DriverResult, DriverTask } from "./token-load.ts";

type Call = (slot: number, method: "issue" | "refresh", req: unknown) => Promise<{ refreshToken: string }>;

const METHODS = {
  issue: { path: "/gatehouse.v1.TokenService/Issue", input: IssueRequestSchema, output: IssueResponseSchema },
  refresh: {
    path: "/gatehouse.v1.TokenService/Refresh",
    input: RefreshRequestSchema,
    output: RefreshResponseSchema,
  },
} as const;

/** Calls over bare HTTP/2 (grpc-h2-client.ts): the driver must cost less than the service it loads. */
function connect(task: DriverTask): { call: Call; close(): void } {
  const client = connectGrpcH2(task.port, { authorization: basicAuthorization(task.clientId, task.secret) });
  const call: Call = async (slot, method, req) => {
    const m = METHODS[method];
    const reply = await client.unary(slot, m.path, toBinary(m.input, req as never));
    return fromBinary(m.output, reply);
  };
  return { call, close: () => client.close() };
}

const issueRequest = (subject: string) =>
  create(IssueRequestSchema, { subject, audience: ["orders"], scopes: ["orders:read"] });

/**
 * What each slot sends next. "refresh" rotates one fresh session per slot over and over;
 * "refresh-preloaded" refreshes a random session of the slot's own share of the preloaded ones (so no
 * two slots ever race on one session), remembering each successor.
 */
async function prepare(task: DriverTask, call: Call): Promise<(slot: number, n: number) => Promise<void>> {
  if (task.mode === "issue") {
    return async (slot, n) => {
      await call(slot, "issue", issueRequest(`bench-${slot}-${n}`));
    };
  }
  if (task.mode === "refresh") {
    const tokens: string[] = [];
    for (let s = 0; s < task.slots; s++) {
      tokens[s] = (await call(s, "issue", issueRequest(`bench-${randomUUID()}`))).refreshToken;
    }
    return async (slot) => {
      tokens[slot] = (
        await call(slot, "refresh", create(RefreshRequestSchema, { refreshToken: tokens[slot]! }))
      ).refreshToken;
    };
  }
  const share = task.preloaded!;
  const perSlot = Math.floor(share.count / task.slots);
  if (perSlot < 1) throw new Error(`${share.count} preloaded sessions for ${task.slots} slots`);
  if (currentSeed !== share.tokens.seed) {
    current.clear();
    currentSeed = share.tokens.seed;
  }
  const draw = (slot: number) => share.first + slot + task.slots * Math.floor(Math.random() * perSlot);
  // The sessions each slot will refresh are drawn, and the tokens of those not rotated yet derived,
  // before the window opens. Derived during it, they made the driver's CPU per call 1.2-1.5× over
  // 5M sessions (nearly every draw a new one) what it was over 1,000 (soon all rotated and
  // remembered), CPU taken from the service on these two shared cores: the soak's ratio then
  // compared the driver's two workloads as well as the two tables.
  const calls = Math.min(
    task.maxCalls ?? Number.POSITIVE_INFINITY,
    (task.durationMs / 1000) * PLAN_PER_SECOND,
  );
  const perSlotPlan = Math.ceil(Math.min(calls, PLAN_MAX_CALLS) / task.slots);
  const plans = Array.from({ length: task.slots }, (_, slot) =>
    Array.from({ length: perSlotPlan }, () => {
      const i = draw(slot);
      return { i, token: current.has(i) ? undefined : preloadedRefreshToken(share.tokens, i) };
    }),
  );
  const taken = new Array<number>(task.slots).fill(0);
  return async (slot) => {
    const k = taken[slot]!;
    taken[slot] = k + 1;
    const planned = plans[slot]![k];
    const i = planned?.i ?? draw(slot);
    // A session drawn twice was rotated by its first call: present the successor.
    const token = current.get(i) ?? planned?.token ?? preloadedRefreshToken(share.tokens, i);
    const res = await call(slot, "refresh", create(RefreshRequestSchema, { refreshToken: token }));
    current.set(i, res.refreshToken);
  };
}

/**
 * Calls planned ahead per second of a task: twice the fastest Refresh rate seen on this machine. A
 * task that outruns its plan, or one longer than PLAN_MAX_CALLS allows (the soak's growth phase,
 * which measures bytes, not speed), draws and derives call by call after it.
 */
const PLAN_PER_SECOND = 6000;
const PLAN_MAX_CALLS = 400_000;

/** The current refresh token of each preloaded session (of seed `currentSeed`) this driver rotated. */
const current = new Map<number, string>();
let currentSeed = "";

async function run(task: DriverTask, send: (m: unknown) => Promise<void>, go: Promise<void>) {
  const { call, close } = connect(task);
  const next = await prepare(task, call);
  await send({ type: "ready" });
  await go;
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let calls = 0;
  let attempts = 0;
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  const end = started + task.durationMs;
  const budget = task.maxCalls ?? Number.POSITIVE_INFINITY;
  await Promise.all(
    Array.from({ length: task.slots }, async (_, s) => {
      while (performance.now() < end && attempts < budget) {
        const n = attempts++;
        const t0 = performance.now();
        try {
          await next(s, n);
          calls++;
          latencies.push(performance.now() - t0);
        } catch (err) {
          const code = err instanceof GrpcCallError ? String(err.code) : (err as Error).message;
          errors[code] = (errors[code] ?? 0) + 1;
        }
      }
    }),
  );
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpu0);
  close();
  const result: DriverResult = {
    calls,
    errors,
    latenciesMs: latencies,
    elapsedMs,
    cpuUs: cpu.user + cpu.system,
  };
  await send({ type: "result", result });
}

const send = (m: unknown) => new Promise<void>((resolve) => process.send!(m, () => resolve()));
let startSignal = () => {};
process.on("message", (m: { type: "task"; task: DriverTask } | { type: "go" } | { type: "exit" }) => {
  if (m.type === "exit") process.exit(0);
  else if (m.type === "go") startSignal();
  else {
    const go = new Promise<void>((resolve) => {
      startSignal = resolve;
    });
    run(m.task, send, go).catch((err) => {
      console.error("load driver failed:", err);
      process.exit(1);
    });
  }
});
