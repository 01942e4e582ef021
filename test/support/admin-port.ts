import { subscribe } from "node:diagnostics_channel";

/**
 * The admin port of a token service started in this process, found from its gRPC (or HTTP) port:
 * startTokenService announces each start's ports on the "gatehouse:token-service:listening"
 * diagnostics channel. Lets helpers such as grpcAdminClient(service.grpcPort) keep their signature
 * now that AdminService has a listener of its own. A port no service here announced (a spawned
 * process's, or already the admin port) is returned as it is.
 */
const adminPorts = new Map<number, number>();

subscribe("gatehouse:token-service:listening", (message) => {
  const { grpcPort, httpPort, adminPort } = message as {
    grpcPort: number;
    httpPort: number;
    adminPort: number;
  };
  adminPorts.set(grpcPort, adminPort);
  adminPorts.set(httpPort, adminPort);
});

export function adminPortOf(port: number): number {
  return adminPorts.get(port) ?? port;
}
