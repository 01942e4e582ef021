/** Resolves with the first of SIGTERM or SIGINT; a second signal while stopping exits at once. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const first = (signal: NodeJS.Signals) => {
      process.off("SIGTERM", first);
      process.off("SIGINT", first);
      process.once("SIGTERM", () => process.exit(130));
      process.once("SIGINT", () => process.exit(130));
      resolve(signal);
    };
    process.on("SIGTERM", first);
    process.on("SIGINT", first);
  });
}
