// Server CPU time per unary call on each way we can serve the same handler: our gRPC server
// (shared/rpc/grpc-server.ts, on node:http2), a bare grpc-js server (what the token service used
// before it), connect-node gRPC over h2c, and our connect-node Connect/JSON listener over HTTP/1.1.
// Under them all, node:http2 with the gRPC framing written by hand and nothing else (no deadlines,
// metadata, size limits, metrics or compression): the floor for any gRPC server in Node, which ours
// is measured against. The server
// runs alone in a forked process; load comes from other forked processes; CPU is the server
// process's own process.cpuUsage() over the measured window, divided by the calls completed in it.
// Loopback only, bounded in time.
//
//   npx tsx bench/serving-cost.ts [--duration 5] [--concurrency 32] [--clients 2] [--rounds 2] [--warmup 1]
//
// Every server is first warmed up for --warmup seconds; then --duration (measured time per server)
// is split over --rounds rounds that interleave the servers, so a burst of other work on the
// machine does not land on one server only. The cheapest round counts (see report()).
import { type ChildProcess, fork } from "node:child_process";
import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { availableParallelism, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import {
  IntrospectRequestSchema,
  IntrospectResponseSchema,
  TokenService,
} from "../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import { GatehouseError } from "../services/shared/errors/gatehouse-error.ts";
import { createLogger } from "../services/shared/logging/index.ts";
import { createMetricsRegistry } from "../services/shared/metrics/index.ts";
import { grpcMessageFrame } from "../services/shared/rpc/grpc-wire.ts";
import {
  createConnectRoutes,
  createGrpcServer,
  createHttpServer,
  createRpcMetrics,
  defineService,
  grpcServiceDefinition,
} from "../services/shared/rpc/index.ts";
import { benchArgs } from "./lib/bench-args.ts";
import { row, report as writeReport } from "./lib/bench-results.ts";

const KINDS = [
  "grpc",
  "grpcjs_bare",
  "h2_bare",
  "connect_grpc",
  "connect_json",
  "connect_json_bare",
] as const;
type Kind = (typeof KINDS)[number];
const LABELS: Record<Kind, string> = {
  grpc: "our gRPC server (node:http2)",
  grpcjs_bare: "bare grpc-js, protobuf-es codecs",
  h2_bare: "bare node:http2, gRPC framing by hand",
  connect_grpc: "connect-node gRPC (h2c), our routes",
  connect_json: "our Connect/JSON listener (HTTP/1.1)",
  connect_json_bare: "bare connectNodeAdapter, Connect/JSON (HTTP/1.1)",
};

type ToChild =
  | { type: "cpu" }
  | { type: "start"; kind: Kind; port: number; concurrency: number }
  | { type: "reset" }
  | { type: "report" }
  | { type: "exit" };
type FromChild =
  | { type: "ready"; port: number }
  | { type: "cpu"; micros: number }
  | { type: "report"; calls: number; errors: number };

const self = fileURLToPath(import.meta.url);
const args = benchArgs("npx tsx bench/serving-cost.ts [flags]", {
  role: "main",
  kind: "grpc",
  duration: 5,
  rounds: 2,
  warmup: 1,
  concurrency: 32,
  clients: 2,
});

// --- server process -------------------------------------------------------------------------

const introspect = async (req: { token: string }) => ({
  active: true,
  subject: "alice",
  scopes: [req.token],
});
const unused = async (): Promise<never> => {
  throw new GatehouseError("failed_precondition", "not part of the benchmark");
};
const service = defineService(TokenService, {
  introspect,
  getJwks: unused,
  issue: unused,
  issueServiceToken: unused,
  refresh: unused,
  revoke: unused,
  listSessions: unused,
  exchange: unused,
});

async function startServer(kind: Kind): Promise<number> {
  const logger = createLogger({
    level: "warn",
    component: "bench",
    pretty: false,
    destination: process.stderr,
  });
  const metrics = createRpcMetrics(createMetricsRegistry("bench", { defaultMetrics: false }));
  switch (kind) {
    case "grpc":
      return createGrpcServer({ services: [service], logger, metrics }).listen("127.0.0.1", 0);
    case "grpcjs_bare": {
      const server = new grpc.Server({ "grpc.enable_channelz": 0 });
      const definition = grpcServiceDefinition(TokenService);
      server.addService(definition, {
        introspect: (
          call: grpc.ServerUnaryCall<{ token: string }, unknown>,
          callback: grpc.sendUnaryData<unknown>,
        ) => {
          callback(
            null,
            create(IntrospectResponseSchema, {
              active: true,
              subject: "alice",
              scopes: [call.request.token],
            }),
          );
        },
      });
      return new Promise((resolve, reject) =>
        server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) =>
          err ? reject(err) : resolve(port),
        ),
      );
    }
    case "h2_bare": {
      const server = http2.createServer();
      server.on("stream", (stream) => {
        const chunks: Buffer[] = [];
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        stream.on("end", () => {
          // One uncompressed message: 5-byte prefix (flag, length), then the message.
          const body = Buffer.concat(chunks);
          void introspect(
            fromBinary(IntrospectRequestSchema, body.subarray(5, 5 + body.readUInt32BE(1))),
          ).then((init) => {
            const message = toBinary(IntrospectResponseSchema, create(IntrospectResponseSchema, init));
            stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
            stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
            stream.end(grpcMessageFrame(message));
          });
        });
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      return (server.address() as AddressInfo).port;
    }
    case "connect_grpc": {
      const routes = createConnectRoutes([service], { logger, metrics });
      const server = http2.createServer(connectNodeAdapter({ routes, readMaxBytes: 64 * 1024 }));
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      return (server.address() as AddressInfo).port;
    }
    case "connect_json_bare": {
      const server = http.createServer(
        connectNodeAdapter({ routes: (router) => router.rpc(TokenService.method.introspect, introspect) }),
      );
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      return (server.address() as AddressInfo).port;
    }
    case "connect_json":
      return (
        await createHttpServer({ routes: [service], logger, metrics }).listen({ host: "127.0.0.1", port: 0 })
      ).port;
  }
}

async function serverRole(kind: Kind): Promise<void> {
  const port = await startServer(kind);
  process.on("message", (msg: ToChild) => {
    if (msg.type === "cpu") {
      const { user, system } = process.cpuUsage();
      send({ type: "cpu", micros: user + system });
    } else if (msg.type === "exit") process.exit(0);
  });
  send({ type: "ready", port });
}

// --- client process -------------------------------------------------------------------------

function grpcCaller(port: number): () => Promise<void> {
  const Client = grpc.makeGenericClientConstructor(grpcServiceDefinition(TokenService), "TokenService");
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as Record<
    string,
    (req: unknown, cb: (err: Error | null) => void) => void
  >;
  const request = create(IntrospectRequestSchema, { token: "t" });
  return () =>
    new Promise((resolve, reject) => client.introspect!(request, (err) => (err ? reject(err) : resolve())));
}

function connectJsonCaller(port: number): () => Promise<void> {
  const client = createClient(
    TokenService,
    createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: "1.1" }),
  );
  return async () => {
    await client.introspect({ token: "t" });
  };
}

/** Drives whichever server it is told to, with `concurrency` callers, until told to report. */
function clientRole(): void {
  const callers = new Map<Kind, () => Promise<void>>();
  let calls = 0;
  let errors = 0;
  let running = false;
  let workers: Promise<void>[] = [];
  const worker = async (callOnce: () => Promise<void>) => {
    while (running) {
      try {
        await callOnce();
        calls += 1;
      } catch {
        errors += 1;
        if (errors > 1000) running = false; // a broken server, not a benchmark: stop
      }
    }
  };
  process.on("message", async (msg: ToChild) => {
    switch (msg.type) {
      case "start": {
        let callOnce = callers.get(msg.kind);
        if (callOnce === undefined) {
          callOnce = msg.kind.startsWith("connect_json") ? connectJsonCaller(msg.port) : grpcCaller(msg.port);
          callers.set(msg.kind, callOnce);
        }
        running = true;
        workers = Array.from({ length: msg.concurrency }, () => worker(callOnce));
        break;
      }
      case "reset":
        calls = 0;
        errors = 0;
        break;
      case "report": {
        const counted = { calls, errors };
        running = false;
        await Promise.all(workers);
        send({ type: "report", ...counted });
        break;
      }
      case "exit":
        process.exit(0);
    }
  });
  send({ type: "ready", port: 0 });
}

function send(msg: FromChild): void {
  process.send?.(msg);
}

// --- main -----------------------------------------------------------------------------------

function spawn(extra: string[]): ChildProcess {
  return fork(self, extra, { stdio: ["ignore", "inherit", "inherit", "ipc"] });
}

function next<T extends FromChild["type"]>(
  child: ChildProcess,
  type: T,
): Promise<Extract<FromChild, { type: T }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${type}" from child within 30 s`)), 30_000);
    const onMessage = (msg: FromChild) => {
      if (msg.type !== type) return;
      clearTimeout(timer);
      child.off("message", onMessage);
      resolve(msg as Extract<FromChild, { type: T }>);
    };
    child.on("message", onMessage);
  });
}

const SETTLE_MS = 250;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Round {
  calls: number;
  errors: number;
  cpuMsPerCall: number;
  callsPerSecond: number;
}

interface Options {
  seconds: number;
  warmup: number;
  rounds: number;
  concurrency: number;
  clients: number;
}

/** Loads one server for --warmup seconds without measuring: JIT, connections, pools, both sides. */
async function warmUp(port: number, kind: Kind, loaders: ChildProcess[], o: Options): Promise<void> {
  const perClient = Math.max(1, Math.round(o.concurrency / loaders.length));
  for (const c of loaders) c.send({ type: "start", kind, port, concurrency: perClient } satisfies ToChild);
  await sleep(o.warmup * 1000);
  const reports = loaders.map((c) => next(c, "report"));
  for (const c of loaders) c.send({ type: "report" } satisfies ToChild);
  await Promise.all(reports);
}

/** One measured window against one (warm) server: calls completed and the server's CPU time. */
async function measureOnce(
  server: ChildProcess,
  port: number,
  kind: Kind,
  loaders: ChildProcess[],
  o: Options,
) {
  const perClient = Math.max(1, Math.round(o.concurrency / loaders.length));
  for (const c of loaders) c.send({ type: "start", kind, port, concurrency: perClient } satisfies ToChild);
  await sleep(SETTLE_MS); // every caller gets its first call in flight
  for (const c of loaders) c.send({ type: "reset" } satisfies ToChild);
  server.send({ type: "cpu" } satisfies ToChild);
  const before = (await next(server, "cpu")).micros;
  const started = performance.now();
  await sleep((o.seconds / o.rounds) * 1000);
  server.send({ type: "cpu" } satisfies ToChild);
  const after = (await next(server, "cpu")).micros;
  const elapsed = (performance.now() - started) / 1000;
  const reports = loaders.map((c) => next(c, "report"));
  for (const c of loaders) c.send({ type: "report" } satisfies ToChild);
  const done = await Promise.all(reports);
  const calls = done.reduce((n, r) => n + r.calls, 0);
  const errors = done.reduce((n, r) => n + r.errors, 0);
  return { calls, errors, cpuMsPerCall: (after - before) / 1000 / calls, callsPerSecond: calls / elapsed };
}

async function main(): Promise<void> {
  const o: Options = {
    seconds: args.duration,
    warmup: args.warmup,
    rounds: args.rounds,
    concurrency: args.concurrency,
    clients: args.clients,
  };
  console.log(
    `serving cost: ${o.seconds}s per server in ${o.rounds} interleaved rounds after a ${o.warmup}s warmup each, ` +
      `${o.concurrency} concurrent callers in ${o.clients} client processes, Node ${process.version}, ` +
      `load average before start ${loadavg()[0]!.toFixed(2)} on ${availableParallelism()} cores`,
  );
  const children: ChildProcess[] = [];
  try {
    const serverChildren = KINDS.map((kind) => spawn(["--role", "server", "--kind", kind]));
    const loaders = Array.from({ length: o.clients }, () => spawn(["--role", "client"]));
    children.push(...serverChildren, ...loaders);
    const ports = await Promise.all(serverChildren.map(async (c) => (await next(c, "ready")).port));
    await Promise.all(loaders.map((c) => next(c, "ready")));
    const servers = new Map(KINDS.map((kind, i) => [kind, { child: serverChildren[i]!, port: ports[i]! }]));

    // Cold servers and clients run slower, and a server at lower throughput spends more CPU per
    // call (less batching per event-loop turn): warm every pair up before measuring any.
    for (const kind of KINDS) await warmUp(servers.get(kind)!.port, kind, loaders, o);
    const rounds = new Map<Kind, Round[]>(KINDS.map((k) => [k, []]));
    for (let r = 0; r < o.rounds; r++) {
      for (const kind of KINDS) {
        const { child, port } = servers.get(kind)!;
        const m = await measureOnce(child, port, kind, loaders, o);
        if (m.errors > 0 || m.calls === 0) throw new Error(`${kind}: ${m.errors} errors, ${m.calls} calls`);
        rounds.get(kind)!.push(m);
      }
    }
    report(rounds);
  } finally {
    for (const c of children) if (c.connected) c.send({ type: "exit" } satisfies ToChild);
    await sleep(200);
    for (const c of children) if (c.exitCode === null) c.kill();
  }
}

/**
 * Other work on the machine can only add CPU time to a call, never remove it: the cheapest round
 * is the best estimate of the intrinsic cost (and the fastest the best estimate of throughput).
 */
function report(rounds: Map<Kind, Round[]>): void {
  const best = KINDS.map((kind) => {
    const rs = rounds.get(kind)!;
    return {
      kind,
      cpuMsPerCall: Math.min(...rs.map((r) => r.cpuMsPerCall)),
      callsPerSecond: Math.max(...rs.map((r) => r.callsPerSecond)),
      calls: rs.reduce((n, r) => n + r.calls, 0),
      allRounds: rs.map((r) => round(r.cpuMsPerCall, 3)).join(" / "),
    };
  });
  const anchor = best.find((b) => b.kind === "grpc")!;
  // Each server against the bare server of its protocol (the floor it adds to): every gRPC server
  // against bare node:http2; the floors alone.
  const FLOORS: Partial<Record<Kind, Kind>> = {
    grpc: "h2_bare",
    connect_grpc: "h2_bare",
    grpcjs_bare: "h2_bare",
    connect_json: "connect_json_bare",
  };
  const floorOf = (kind: Kind) => best.find((b) => b.kind === FLOORS[kind]);
  const rows = best.flatMap((b) => {
    const floor = floorOf(b.kind);
    return [
      row(
        `${b.kind}_cpu_us_per_call`,
        b.cpuMsPerCall * 1000,
        "µs CPU",
        floor ? floor.cpuMsPerCall * 1000 : null,
      ),
      row(`${b.kind}_calls_per_s`, b.callsPerSecond, "calls/s", floor ? floor.callsPerSecond : null),
    ];
  });
  console.table(
    best.map((b) => ({
      server: LABELS[b.kind],
      "cpu ms/call": round(b.cpuMsPerCall, 4),
      "× ours": round(b.cpuMsPerCall / anchor.cpuMsPerCall, 2),
      "calls/s": Math.round(b.callsPerSecond),
      "rounds (ms/call)": b.allRounds,
    })),
  );
  writeReport("serving-cost", rows, {
    how: "server CPU per call from process.cpuUsage of the server process; cheapest of the rounds; limit = the bare server of the same protocol (every gRPC server: bare node:http2)",
    rounds: Object.fromEntries(best.map((b) => [b.kind, b.allRounds])),
    loadAverage: loadavg()[0],
  });
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

if (args.role === "server") {
  const kind = args.kind as Kind;
  if (!KINDS.includes(kind)) throw new TypeError(`--kind must be one of ${KINDS.join(", ")}`);
  await serverRole(kind);
} else if (args.role === "client") clientRole();
else await main();
