// sodium-native ships no types; ed25519-signing.ts declares the part it uses (its `Libsodium`).
declare module "sodium-native" {
  const sodium: unknown;
  export default sodium;
}
