import { createHealthService, type HealthService } from "./grpc-health-service.ts";

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
  /** The service to route (grpc-server.ts serves its Check, List and Watch). */
  readonly service: HealthService;
  /** First status now, then one check per interval. */
  start(): Promise<void>;
  /** NOT_SERVING from now on, pushed to every watcher at once; no more checks. */
  drain(): void;
  /** Ends open Watch streams (status OK: clients reconnect elsewhere), so shutdown need not wait for them. */
  stop(): void;
}

/**
 * `grpc.health.v1.Health` for a server whose readiness is asynchronous (the token service asks its
 * database and key ring): readiness is polled, every change is pushed to watchers at once, and a
 * drain flips every status to NOT_SERVING the moment it starts.
 */
export function createGrpcHealth(options: GrpcHealthOptions): GrpcHealth {
  let ready = false;
  let draining = false;
  let timer: NodeJS.Timeout | undefined;
  const service = createHealthService({ services: options.services, serving: () => ready && !draining });

  const check = async () => {
    let now = false;
    try {
      now = await options.ready();
    } catch (err) {
      options.onError?.(err);
    }
    if (draining || now === ready) return;
    ready = now;
    service.notify();
  };

  return {
    service,
    async start() {
      await check();
      timer = setInterval(() => void check(), options.intervalMs ?? 2000);
      timer.unref();
    },
    drain() {
      draining = true;
      clearInterval(timer);
      service.notify();
    },
    stop() {
      draining = true;
      clearInterval(timer);
      service.stop();
    },
  };
}
