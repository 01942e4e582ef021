/**
 * Where Gatehouse may fetch a JWK Set or discovery document from: https anywhere, plain http only
 * on a loopback address. A key set fetched over http from another host could be swapped on the way,
 * and with it every client it vouches for; loopback is for tests and `gatehouse dev`.
 */
export function jwksUrlProblem(value: string): string | null {
  if (!URL.canParse(value)) return "is not a URL";
  const url = new URL(value);
  if (url.username !== "" || url.password !== "") return "must not carry credentials";
  if (url.protocol === "https:") return null;
  if (url.protocol === "http:" && isLoopback(url.hostname)) return null;
  return "must be https (http only on a loopback address)";
}

function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127(\.\d{1,3}){3}$/.test(hostname);
}
