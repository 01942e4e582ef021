export { createConnectRoutes } from "./connect-routes.ts";

export { createGrpcServer } from "./grpc-server.ts";
export { grpcServiceDefinition } from "./grpc-service-definition.ts";

export { createHttpServer, sendJson } from "./http-server.ts";

export { createRpcMetrics } from "./rpc-metrics.ts";
export type { RpcServers } from "./rpc-servers.ts";
export { startRpcServers } from "./rpc-servers.ts";

export { defineService } from "./service-handlers.ts";
