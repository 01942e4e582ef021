/**
 * Why a listener could not bind, as the one line an operator needs: which setting, which address,
 * what to do. A taken port is a runtime failure (exit 1: the settings are fine, something else holds
 * the port), so this is a plain Error, not a SettingsError.
 */
export function listenFailure(setting: string, address: { host: string; port: number }, err: unknown): Error {
  const where = address.host.includes(":")
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === "EADDRINUSE") {
    return new Error(
      `${setting}: ${where} is already in use: stop what listens there or choose another address`,
    );
  }
  if (code === "EACCES") {
    return new Error(
      `${setting}: not allowed to listen on ${where}: use a port above 1023 or grant the capability`,
    );
  }
  if (code === "EADDRNOTAVAIL") {
    return new Error(
      `${setting}: ${address.host} is not an address of this host: listen on one that is, or 0.0.0.0`,
    );
  }
  const text = err instanceof Error ? err.message : String(err);
  return new Error(`${setting}: cannot listen on ${where}: ${text}`);
}
