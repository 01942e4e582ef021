// oidc-provider ships no type declarations; the benchmark uses a handful of its members.
declare module "oidc-provider" {
  // biome-ignore lint/suspicious/noExplicitAny: an untyped third-party API, used only by the peer benchmark
  const Provider: any;
  export default Provider;
}
