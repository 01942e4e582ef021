import type {
  DescMessage,
  DescMethodUnary,
  DescService,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import type { CallContext } from "./call-context.ts";

/**
 * One RPC implementation, protocol-neutral: the decoded request and the call context in, the
 * response out. Throw a `GatehouseError` to fail the call; anything else thrown becomes `internal`.
 */
type UnaryHandler<I extends DescMessage, O extends DescMessage> = (
  req: MessageShape<I>,
  ctx: CallContext,
) => Promise<MessageInitShape<O>>;

/** Every method of a service, keyed by its protobuf-es local name (`issue`, `getJwks`, ...). */
export type ServiceHandlers<S extends DescService> = {
  [M in keyof S["method"]]: UnaryHandler<S["method"][M]["input"], S["method"][M]["output"]>;
};

/** A service and its handlers, ready to be served over gRPC, Connect and gRPC-Web at once. */
export interface ServiceRegistration {
  service: DescService;
  // biome-ignore lint/suspicious/noExplicitAny: one list holds registrations of different services; defineService checks each.
  handlers: ServiceHandlers<any>;
}

/**
 * Pairs a service with its handlers, type-checking every method's request and response.
 *
 * @example
 * const tokenService = defineService(TokenService, {
 *   async getJwks() { return { keys: await keyRing.publicJwks() }; },
 *   ...
 * });
 * await startRpcServers({ services: [tokenService], ... });
 */
export function defineService<S extends DescService>(
  service: S,
  handlers: ServiceHandlers<S>,
): ServiceRegistration {
  return { service, handlers };
}

/** A unary method of a registered service and the function that implements it. */
export interface BoundMethod {
  readonly method: DescMethodUnary;
  readonly handler: UnaryHandler<DescMessage, DescMessage>;
}

/**
 * The methods of a registration, checked up front: every method must be unary and have a handler,
 * so a missing implementation fails at start, not on the first call.
 */
export function boundMethods(registration: ServiceRegistration): BoundMethod[] {
  const { service, handlers } = registration;
  const bound: BoundMethod[] = [];
  for (const method of service.methods) {
    if (method.methodKind !== "unary") {
      throw new TypeError(`${service.typeName}.${method.name}: only unary methods are supported`);
    }
    const handler: unknown = handlers[method.localName];
    if (typeof handler !== "function") {
      throw new TypeError(`${service.typeName}.${method.name}: no handler "${method.localName}"`);
    }
    bound.push({
      method: method as DescMethodUnary,
      handler: handler.bind(handlers) as BoundMethod["handler"],
    });
  }
  const extra = Object.keys(handlers).filter(
    (k) => typeof handlers[k] === "function" && !service.methods.some((m) => m.localName === k),
  );
  if (extra.length > 0) {
    throw new TypeError(`${service.typeName}: handlers for unknown methods: ${extra.join(", ")}`);
  }
  return bound;
}
