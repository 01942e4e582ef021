/** A client's access-token lifetime, kept within 1 minute and the service-wide maximum. */
export function accessTokenTtlSeconds(clientTtlSeconds: number, maxSeconds: number): number {
  return Math.min(Math.max(clientTtlSeconds, 60), maxSeconds);
}
