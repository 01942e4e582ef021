// Renders docs/configuration.md from the settings each component declares, so the reference cannot
// drift from the code: `npx tsx scripts/config-reference.ts` writes it, `--check` fails if stale.
import { readFileSync, writeFileSync } from "node:fs";
import { renderSettingsTable } from "../services/shared/settings/index.ts";
import { sidecarSettings } from "../services/sidecar/sidecar-settings.ts";
import { tokenServiceSettings } from "../services/token/token-service-settings.ts";

export function renderConfigurationReference(): string {
  return [
    "# Configuration reference",
    "",
    "Generated from the settings declared in code (`scripts/config-reference.ts`); do not edit by hand.",
    "Every setting is read once at start-up from its environment variable or its flag (the flag wins).",
    "A bad or missing value stops start-up with one line naming the variable. Durations take `ms`, `s`,",
    "`m`, `h` or `d` (a bare number is seconds).",
    "",
    "## Token service (`gatehouse serve`)",
    "",
    renderSettingsTable(tokenServiceSettings),
    "",
    "## Sidecar (`gatehouse sidecar`)",
    "",
    renderSettingsTable(sidecarSettings),
    "",
  ].join("\n");
}

const target = new URL("../docs/configuration.md", import.meta.url);
if (import.meta.url === `file://${process.argv[1]}`) {
  const text = renderConfigurationReference();
  if (process.argv.includes("--check")) {
    if (readFileSync(target, "utf8") !== text) {
      console.error("docs/configuration.md is stale: run npx tsx scripts/config-reference.ts");
      process.exit(1);
    }
  } else {
    writeFileSync(target, text);
  }
}
