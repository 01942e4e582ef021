#!/usr/bin/env node
// Container health check for every long-running role of the image (the slim base has no curl):
// the token service answers on its HTTP listener (GATEHOUSE_HTTP_LISTEN, :7480), the sidecar on its
// control listener (GATEHOUSE_CONTROL_LISTEN, :7402). The first listener that answers at all is this
// container's role: exit 0 if it said 200, else 1. The path is /healthz unless given:
// `healthcheck.mjs /readyz`.
// GATEHOUSE_HEALTHCHECK_URL replaces the candidates with one URL.
const path = process.argv[2] ?? "/healthz";

/** `host:port`, `:port` or `port` (the listener syntax) → a URL on a local address. */
function local(listen, fallbackPort) {
  const match = /^(?:(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]*):)?(\d{1,5})$/.exec((listen ?? "").trim());
  const port = match ? match[2] : fallbackPort;
  const host = match?.[1] ?? "";
  const wildcard = host === "" || host === "0.0.0.0" || host === "[::]";
  return `http://${wildcard ? "127.0.0.1" : host}:${port}${path}`;
}

const candidates = process.env.GATEHOUSE_HEALTHCHECK_URL
  ? [process.env.GATEHOUSE_HEALTHCHECK_URL]
  : [local(process.env.GATEHOUSE_HTTP_LISTEN, "7480"), local(process.env.GATEHOUSE_CONTROL_LISTEN, "7402")];

for (const url of candidates) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.body?.cancel();
    if (!res.ok) process.stderr.write(`healthcheck: ${url} answered ${res.status}\n`);
    process.exit(res.ok ? 0 : 1);
  } catch (err) {
    process.stderr.write(`healthcheck: ${url}: ${err.cause?.code ?? err.name}\n`);
  }
}
process.exit(1);
