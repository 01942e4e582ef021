import type { HeaderReader, TraceSpan, Tracing } from "../../shared/tracing/tracing.ts";
import type { GuardMode } from "./decision-metrics.ts";
import { type Guard, type GuardRequest, type GuardResult, pathOf } from "./guard.ts";

/**
 * The sidecar's SERVER span for one request at an entry point (`proxy GET`, `ext_authz POST`,
 * `forward_auth GET`), continuing the caller's trace context; undefined with tracing off. Only the
 * path goes into it: the query may carry credentials, the token never does.
 */
export function guardSpan(
  tracing: Tracing | undefined,
  mode: GuardMode,
  request: Pick<GuardRequest, "method" | "target">,
  header: HeaderReader,
): TraceSpan | undefined {
  return tracing?.serverSpan(`${mode} ${request.method}`, header, {
    "gatehouse.mode": mode,
    "http.request.method": request.method,
    "url.path": pathOf(request.target),
  });
}

/**
 * `guard.check` inside a `verify` child span of `span` that records the decision, or the bare check
 * (the same promise, nothing added) when there is no span.
 */
export function checkInSpan(
  guard: Guard,
  request: GuardRequest,
  mode: GuardMode,
  span: TraceSpan | undefined,
): Promise<GuardResult> {
  if (span === undefined) return guard.check(request, mode);
  const verify = span.child("verify");
  return guard.check(request, mode).then(
    (result) => {
      verify.end(result.allowed ? undefined : result.denial.code);
      return result;
    },
    (err: unknown) => {
      verify.end("internal");
      throw err;
    },
  );
}

/**
 * Ends an entry point's span with the HTTP status it answered and, for a refusal, its reason (an
 * app that did not answer, a 5xx without one, counts as `unavailable`).
 */
export function endGuardSpan(span: TraceSpan | undefined, httpStatus: number, reason?: string): void {
  if (span === undefined) return;
  span.setAttribute("http.response.status_code", httpStatus);
  span.end(reason ?? (httpStatus >= 500 || httpStatus === 0 ? "unavailable" : undefined));
}
