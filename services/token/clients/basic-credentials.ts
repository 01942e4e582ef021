/** A client id and secret as a caller presented them. */
export interface BasicCredentials {
  clientId: string;
  secret: string;
}

/** `authorization: Basic base64(client_id:secret)` → its parts, or null when it is not that shape. */
export function parseBasicCredentials(header: string | undefined): BasicCredentials | null {
  if (header === undefined || header.length > 2048) return null;
  const m = /^Basic[ ]+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header);
  if (!m) return null;
  const decoded = Buffer.from(m[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon <= 0) return null;
  // RFC 6749 §2.3.1: both parts are form-urlencoded before base64; most callers don't, so decode
  // only when it is safe to.
  const clientId = safeDecode(decoded.slice(0, colon));
  const secret = safeDecode(decoded.slice(colon + 1));
  if (clientId === "" || secret === "") return null;
  return { clientId, secret };
}

function safeDecode(s: string): string {
  if (!s.includes("%")) return s;
  try {
    return decodeURIComponent(s.replace(/\+/g, " "));
  } catch {
    return s;
  }
}

export function basicAuthorization(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${clientId}:${secret}`).toString("base64")}`;
}
