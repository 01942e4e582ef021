import type * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";

export interface GrpcHealthOptions {
  /** The services reported one by one; "" (the whole server) is always reported too. */
  services: readonly string[];
  /** Whether the server should get traffic now (its readiness); a throw counts as not ready. */
  ready: () => Promise<boolean>;
  /** How often `ready` is asked, so Watch streams see changes. Default 2 s. */
  intervalMs?: number;
  onError?: (err: unknown) => void;
}

export interface GrpcHealth {
  /** Registers `grpc.health.v1.Health` on a grpc-js server (before it binds). */
  addToServer(server: grpc.Server): void;
  /** First status now, then one check per interval. */
  start(): Promise<void>;
  /** NOT_SERVING from now on, pushed to every watcher at once; no more checks. */
  drain(): void;
  /** Ends open Watch streams (status OK: clients reconnect elsewhere), so shutdown need not wait for them. */
  stop(): void;
}

/**
 * `grpc.health.v1.Health` (Check, Watch, List) on a grpc-js server, as Kubernetes `grpc:` probes
 * and gRPC load balancers ask it: grpc-health-check's implementation, kept in step with readiness
 * by polling, flipped to NOT_SERVING the moment a drain starts, and with its Watch streams ended
 * on stop (grpc-js's graceful shutdown would otherwise wait for them until the grace runs out).
 */
export function createGrpcHealth(options: GrpcHealthOptions): GrpcHealth {
  const names = ["", ...options.services];
  const health = new HealthImplementation(Object.fromEntries(names.map((n) => [n, "NOT_SERVING"])));
  const watches = new Set<grpc.ServerWritableStream<unknown, unknown>>();
  let current: boolean | undefined;
  let draining = false;
  let timer: NodeJS.Timeout | undefined;

  const set = (serving: boolean) => {
    if (serving === current) return;
    current = serving;
    for (const name of names) health.setStatus(name, serving ? "SERVING" : "NOT_SERVING");
  };
  const check = async () => {
    let serving = false;
    try {
      serving = await options.ready();
    } catch (err) {
      options.onError?.(err);
    }
    if (!draining) set(serving);
  };

  return {
    addToServer(server) {
      health.addToServer({
        addService(definition, implementation) {
          const watch = implementation.watch as grpc.handleServerStreamingCall<unknown, unknown>;
          server.addService(definition, {
            ...implementation,
            watch(call: grpc.ServerWritableStream<unknown, unknown>) {
              watches.add(call);
              call.once("cancelled", () => watches.delete(call));
              call.once("finish", () => watches.delete(call));
              watch(call);
            },
          });
        },
      });
    },
    async start() {
      await check();
      timer = setInterval(() => void check(), options.intervalMs ?? 2000);
      timer.unref();
    },
    drain() {
      draining = true;
      clearInterval(timer);
      set(false);
    },
    stop() {
      draining = true;
      clearInterval(timer);
      for (const call of watches) call.end();
      watches.clear();
    },
  };
}
