export async function resolve(specifier, context, nextResolve) {
  if (specifier === "sodium-native") {
    throw Object.assign(new Error("No native build was found for this platform (test: without-libsodium)"), {
      code: "ERR_MODULE_NOT_FOUND",
    });
  }
  return nextResolve(specifier, context);
}
