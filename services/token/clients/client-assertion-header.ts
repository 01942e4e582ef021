/**
 * The request metadata that carries a client assertion (RFC 7523) on the RPCs. Its own header
 * rather than `authorization: Bearer`, which would read as an access token for the call.
 */
export const CLIENT_ASSERTION_HEADER = "x-gatehouse-client-assertion";
