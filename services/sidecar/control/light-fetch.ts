import * as http from "node:http";
import type * as https from "node:https";

/**
 * Just enough of `fetch` for the JWKS cache (GET, headers, status, text, abort signal), on
 * node:http. Node's global fetch loads undici on first use: about 13 MB of RSS and tens of
 * milliseconds before the first JWKS request even leaves, in a process whose budget is 80 MB and
 * one second. `https:` URLs load node:https when first needed.
 */
export const lightFetch = (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
  const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url);
  const transport: typeof http | typeof https =
    url.protocol === "https:"
      ? await import("node:https")
      : url.protocol === "http:"
        ? http
        : unsupported(url);
  const signal = init?.signal ?? undefined;
  signal?.throwIfAborted();
  return new Promise<Response>((resolve, reject) => {
    const req = transport.get(
      url,
      { headers: init?.headers as http.OutgoingHttpHeaders | undefined },
      (res) => {
        const chunks: Buffer[] = [];
        let done: Promise<string> | undefined;
        const text = () => {
          done ??= new Promise<string>((ok, fail) => {
            res.on("data", (chunk: Buffer) => chunks.push(chunk));
            res.once("end", () => ok(Buffer.concat(chunks).toString("utf8")));
            res.once("error", fail);
          });
          return done;
        };
        resolve({
          status: res.statusCode ?? 0,
          ok: (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300,
          headers: {
            get(name: string) {
              const value = res.headers[name.toLowerCase()];
              return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
            },
          },
          body: {
            async cancel() {
              res.destroy();
            },
          },
          text,
          json: async () => JSON.parse(await text()),
        } as unknown as Response);
      },
    );
    req.once("error", reject);
    signal?.addEventListener("abort", () => req.destroy(signal.reason as Error), { once: true });
  });
}) as typeof globalThis.fetch;

function unsupported(url: URL): never {
  throw new TypeError(`cannot fetch ${url.protocol} URLs`);
}
