import { AdminService } from "../../services/gen/proto/gatehouse/v1/admin_service_pb.ts";
import { grpcServiceClient } from "./token-clients.ts";

/** AdminService over grpc-js, as the CLI and operators' tooling call it; `port` is the service's gRPC port or its admin port. */
export function grpcAdminClient(port: number, credentials?: { id: string; secret: string }) {
  return grpcServiceClient(AdminService, port, credentials);
}
