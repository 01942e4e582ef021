import { GatehouseError } from "../errors/gatehouse-error.ts";
import type { Logger } from "../logging/index.ts";
import type { CallContext } from "./call-context.ts";

/**
 * Turns whatever a handler threw into the GatehouseError to send, logging the ones that need a
 * human: `internal` (a bug) at error level and `unavailable` (a dependency down) at warn, each with
 * its private cause. Expected refusals (bad credentials, denied scope...) are counted in metrics,
 * not logged. Request bodies are never logged: they carry tokens and secrets.
 */
export function settleFailure(thrown: unknown, ctx: CallContext, logger: Logger): GatehouseError {
  const err = GatehouseError.from(thrown);
  if (err.code === "internal" || err.code === "unavailable") {
    const fields = {
      err: err.cause ?? err,
      code: err.code,
      requestId: ctx.requestId,
      service: ctx.service,
      method: ctx.method,
      protocol: ctx.protocol,
      peer: ctx.peer,
    };
    if (err.code === "internal") logger.error(fields, "rpc failed");
    else logger.warn(fields, "rpc unavailable");
  }
  return err;
}
