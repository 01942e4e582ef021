export { createConnectRoutes } from "./connect-routes.ts";

export { createGrpcServer, grpcServiceDefinition, listenGrpc } from "./grpc-server.ts";

export { createHttpServer, sendJson } from "./http-server.ts";

export { createRpcMetrics } from "./rpc-metrics.ts";
export type { RpcServers } from "./rpc-servers.ts";
export { startRpcServers } from "./rpc-servers.ts";

export { defineService } from "./service-handlers.ts";
