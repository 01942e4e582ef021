import type { Readable } from "node:stream";

/**
 * Calls `onIdle` once when a request body goes `idleMs` without a byte arriving, so a caller
 * dripping its body cannot hold a connection, a stream and an upstream request for as long as it
 * likes. Time the body spends paused because the app is not reading (backpressure) does not count
 * against the caller. Stops at the body's end, error or close.
 */
export function watchBodyIdle(body: Readable, idleMs: number, onIdle: () => void): void {
  const check = () => {
    if (body.readableFlowing === false) timer.refresh();
    else onIdle();
  };
  const timer = setTimeout(check, idleMs);
  const stop = () => {
    clearTimeout(timer);
    body.off("data", progress);
  };
  const progress = () => timer.refresh();
  body.on("data", progress);
  body.once("end", stop);
  body.once("error", stop);
  body.once("close", stop);
}
