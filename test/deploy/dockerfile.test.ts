import { existsSync, readdirSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { join, posix } from "node:path";
import {
  type Copy,
  DockerfileParser,
  type From,
  type Healthcheck,
  type Instruction,
  JSONInstruction,
  type Label,
  type PropertyInstruction,
} from "dockerfile-ast";
import { describe, expect, it } from "vitest";
import { REPO, readRepoFile } from "./deploy-files.ts";

interface Stage {
  name: string | null;
  from: From;
  instructions: Instruction[];
}

const dockerfile = DockerfileParser.parse(readRepoFile("deploy/docker/Dockerfile"));
const pkg = JSON.parse(readRepoFile("package.json")) as {
  license: string;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
};

/** Default values of the ARGs declared before the first FROM, which FROM lines may use. */
const globalArgs = Object.fromEntries(
  dockerfile.getInitialARGs().flatMap((arg) => {
    const p = arg.getProperty();
    return p ? [[p.getName(), p.getValue() ?? ""]] : [];
  }),
);

function expand(text: string): string {
  return text.replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a: string, b: string) => globalArgs[a ?? b] ?? "");
}

const stages: Stage[] = [];
for (const instruction of dockerfile.getInstructions()) {
  if (instruction.getKeyword() === "FROM") {
    const from = instruction as From;
    stages.push({ name: from.getBuildStage(), from, instructions: [] });
  } else {
    stages.at(-1)?.instructions.push(instruction);
  }
}
const final = stages.at(-1)!;

function all(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((i) => i.getKeyword() === keyword);
}

function args(i: Instruction): string[] {
  return i instanceof JSONInstruction
    ? i.getJSONStrings().map((s) => s.getJSONValue())
    : i.getArguments().map((a) => a.getValue());
}

function unquote(value: string | null): string | null {
  return value?.replace(/^"(.*)"$/s, "$1") ?? null;
}

/** One COPY: where from (a stage name, or the build context), which sources, to where in /app. */
function copies(stage: Stage): { from: string | null; sources: string[]; dest: string }[] {
  const workdir = all(stage, "WORKDIR").at(-1)?.getArguments()[0]?.getValue() ?? "/";
  return (all(stage, "COPY") as Copy[]).map((c) => {
    const values = c
      .getArguments()
      .map((a) => a.getValue())
      .filter((v) => !v.startsWith("--"));
    const dest = values.at(-1)!;
    return {
      from: c.getFromFlag()?.getValue() ?? null,
      sources: values.slice(0, -1),
      dest: (posix.isAbsolute(dest) ? dest : posix.join(workdir, dest)).replace(/(.)\/$/, "$1"),
    };
  });
}

/** Docker's .dockerignore rules: the last pattern matching the path or one of its parents wins. */
function dockerignored(path: string): boolean {
  const rules = readRepoFile(".dockerignore")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => {
      const negate = l.startsWith("!");
      const pattern = posix.normalize((negate ? l.slice(1) : l).replace(/^\/+/, ""));
      const regex = pattern
        .split("/")
        .map((seg) =>
          seg === "**"
            ? ".*"
            : seg
                .replace(/[.+^${}()|[\]\\]/g, "\\$&")
                .replace(/\*/g, "[^/]*")
                .replace(/\?/g, "[^/]"),
        )
        .join("/")
        .replace(/\.\*\//g, "(?:.*/)?");
      return { negate, regex: new RegExp(`^${regex}$`) };
    });
  const segments = posix.normalize(path).replace(/\/$/, "").split("/");
  const candidates = segments.map((_, i) => segments.slice(0, i + 1).join("/"));
  let excluded = false;
  for (const rule of rules) if (candidates.some((c) => rule.regex.test(c))) excluded = !rule.negate;
  return excluded;
}

describe("deploy/docker/Dockerfile", () => {
  it("is multi-stage, building and running on the same current Node LTS slim base", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const base = expand(final.from.getImage() ?? "");
    const lts = /^node:(\d+)(?:\.\d+)*-(?:bookworm|trixie)-slim(?:@sha256:[0-9a-f]{64})?$/.exec(base);
    const distroless =
      /^gcr\.io\/distroless\/nodejs(\d+)-debian\d+(?::[\w.-]+)?(?:@sha256:[0-9a-f]{64})?$/.exec(base);
    const major = Number((lts ?? distroless)?.[1]);
    expect(base, "an LTS slim or distroless Node image").toMatch(/./);
    expect(major % 2 === 0 && major >= 22, `${base} is a current Node LTS`).toBe(true);
    for (const stage of stages) expect(expand(stage.from.getImage() ?? "")).toBe(base);
  });

  it("installs from the lockfile, then drops dev dependencies before the final stage copies node_modules", () => {
    const modules = copies(final).find((c) => c.sources.some((s) => /^\/app\/node_modules\/?$/.test(s)));
    expect(modules?.from, "node_modules come from a build stage").toBeTruthy();
    const builder = stages.find((s) => s.name === modules!.from)!;
    const script = all(builder, "RUN")
      .map((r) => r.getArgumentsContent() ?? "")
      .join("\n");
    const ci = script.search(/\bnpm ci\b/);
    expect(ci, "npm ci (the lockfile, exactly)").toBeGreaterThanOrEqual(0);
    // `npm install` only as the fallback for a lockfile `npm ci` refuses, and never rewriting it.
    for (const m of script.matchAll(/\bnpm (?:install|i)\b[^\n;&|}]*/g)) {
      expect(m[0]).toContain("--no-save");
      expect(script.slice(0, m.index)).toMatch(/npm ci \|\|\s*$/);
    }
    const omitted =
      /\bnpm ci\b[^\n&|;]*--omit=dev/.test(script) || script.indexOf("npm prune --omit=dev") > ci;
    expect(omitted, "npm prune --omit=dev after npm ci, or npm ci --omit=dev").toBe(true);
    // The generated code comes from the same stage (npm ci's postinstall makes it).
    expect(
      copies(final).some((c) => c.from === builder.name && c.sources.includes("/app/services/gen/")),
    ).toBe(true);
  });

  it("installs nothing in the final stage and removes the package managers", () => {
    const script = all(final, "RUN")
      .map((r) => r.getArgumentsContent() ?? "")
      .join("\n");
    expect(script).not.toMatch(/\bnpm (ci|install|i)\b/);
    expect(script).toMatch(/rm -rf[^&]*\/usr\/local\/lib\/node_modules\/npm/);
  });

  it("runs as a numeric non-root user", () => {
    const user = all(final, "USER").at(-1);
    expect(user, "a USER in the final stage").toBeDefined();
    const [uid, gid] = args(user!)[0]!.split(":");
    expect(uid).toMatch(/^\d+$/);
    expect(Number(uid)).toBeGreaterThan(0);
    if (gid !== undefined) expect(gid).toMatch(/^\d+$/);
    // Nothing after USER switches back.
    const last = final.instructions.findLastIndex((i) => i.getKeyword() === "USER");
    expect(final.instructions.slice(last + 1).map((i) => i.getKeyword())).not.toContain("RUN");
  });

  it("suits a read-only root filesystem: tsx compiles in memory, HOME and TMPDIR are /tmp", () => {
    const env = Object.fromEntries(
      all(final, "ENV").flatMap((e) =>
        (e as PropertyInstruction).getProperties().map((p) => [p.getName(), unquote(p.getValue())]),
      ),
    );
    expect(env).toMatchObject({
      NODE_ENV: "production",
      TSX_DISABLE_CACHE: "1",
      HOME: "/tmp",
      TMPDIR: "/tmp",
    });
  });

  it("enters through the gatehouse command, so the subcommand picks the role", () => {
    const entrypoint = all(final, "ENTRYPOINT").at(-1)!;
    expect(entrypoint).toBeInstanceOf(JSONInstruction);
    expect(args(entrypoint)).toEqual(["node", `/app/${pkg.bin.gatehouse}`]);
    const bin = copies(final).find((c) => c.from === null && c.sources.includes("bin/"));
    expect(bin?.dest).toBe("/app/bin");
    expect(args(all(final, "CMD").at(-1)!)).toEqual(["--help"]);
  });

  it("ships the sidecar bundle built in the build stage from the sources it also ships", () => {
    const bundle = copies(final).find((c) => c.sources.includes("/app/dist/"));
    expect(bundle?.from, "dist/ comes from a build stage, never from the build context").toBeTruthy();
    expect(bundle?.dest).toBe("/app/dist");
    // A dist/ of the developer's machine must not slip in through the context either.
    expect(dockerignored("dist/sidecar/sidecar.mjs")).toBe(true);
    const builder = stages.find((s) => s.name === bundle!.from)!;
    const at = (keyword: string, test: (text: string) => boolean) =>
      builder.instructions.findIndex(
        (i) => i.getKeyword() === keyword && test(i.getArgumentsContent() ?? ""),
      );
    const build = at("RUN", (t) => /\bnode scripts\/sidecar-bundle\.mjs\b/.test(t));
    expect(build, "RUN node scripts/sidecar-bundle.mjs").toBeGreaterThanOrEqual(0);
    // Built from the same sources (and launcher check) the runtime stage copies from the context.
    for (const source of ["services/", "bin/", "scripts/sidecar-bundle.mjs"]) {
      const copied = at("COPY", (t) => t.split(/\s+/).includes(source));
      expect(copied, `${source} is copied before the bundle is built`).toBeGreaterThanOrEqual(0);
      expect(copied, `${source} is copied before the bundle is built`).toBeLessThan(build);
    }
    for (const source of ["services/", "bin/"]) {
      expect(
        copies(final).some((c) => c.from === null && c.sources.includes(source)),
        source,
      ).toBe(true);
    }
    // esbuild is still there: dev dependencies go only afterwards (in the same RUN or a later one).
    const prune = at("RUN", (t) => t.includes("npm prune"));
    expect(prune).toBeGreaterThanOrEqual(build);
    if (prune === build) {
      const script = builder.instructions[build]!.getArgumentsContent() ?? "";
      expect(script.indexOf("npm prune")).toBeGreaterThan(script.indexOf("sidecar-bundle.mjs"));
    }
  });

  it("checks health with the bundled script, which the image contains", () => {
    const healthchecks = all(final, "HEALTHCHECK") as Healthcheck[];
    expect(healthchecks).toHaveLength(1);
    const text = healthchecks[0]!.getArgumentsContent() ?? "";
    expect(healthchecks[0]!.getSubcommand()?.getValue()).toBe("CMD");
    const command = JSON.parse(text.slice(text.indexOf("["))) as string[];
    expect(command).toEqual(["node", "/app/deploy/docker/healthcheck.mjs"]);
    expect(copies(final).some((c) => c.dest === command[1] && existsSync(join(REPO, c.sources[0]!)))).toBe(
      true,
    );
  });

  it("exposes the four listeners", () => {
    const ports = all(final, "EXPOSE").flatMap(args);
    expect(ports.sort()).toEqual(["7400", "7401", "7402", "7480"]);
  });

  it("carries OCI labels, with the licence of package.json", () => {
    const labels = Object.fromEntries(
      (all(final, "LABEL") as Label[]).flatMap((l) =>
        l.getProperties().map((p) => [p.getName(), unquote(p.getValue())]),
      ),
    );
    for (const key of ["title", "description", "licenses", "version", "revision", "created", "source"]) {
      expect(labels, key).toHaveProperty(`org.opencontainers.image.${key}`);
    }
    expect(labels["org.opencontainers.image.licenses"]).toBe(pkg.license);
  });

  it("copies only files that exist and that .dockerignore lets into the build context", () => {
    const fromContext = stages.flatMap((s) =>
      copies(s)
        .filter((c) => c.from === null)
        .flatMap((c) => c.sources),
    );
    expect(fromContext.length).toBeGreaterThan(0);
    for (const source of fromContext) {
      expect(existsSync(join(REPO, source)), source).toBe(true);
      expect(dockerignored(source), `${source} is excluded by .dockerignore`).toBe(false);
    }
  });

  it("keeps local state, dependencies, generated code and secrets out of the build context", () => {
    for (const path of [
      ".git/HEAD",
      "node_modules/tsx/package.json",
      ".gatehouse/dev-state.json",
      "services/gen/prisma/client.ts",
      "bench/results/summary.md",
      "coverage/index.html",
      "deploy/compose/master-key.env",
      "deploy/k8s/secret.example.yaml",
      ".env",
    ]) {
      expect(dockerignored(path), path).toBe(true);
    }
    expect(dockerignored("deploy/docker/healthcheck.mjs")).toBe(false);
    expect(dockerignored("services/token/token-service.ts")).toBe(false);
  });
});

describe("what the image runs needs production dependencies only", () => {
  /** Bare module specifiers that are loaded at run time (type-only imports are erased). */
  function runtimeImports(text: string): string[] {
    const out: string[] = [];
    const statics =
      /(?:^|[\n;])\s*(?:import|export)\s+(?!type\s)(?:[^'";]*?\sfrom\s+)?["']([^"'./][^"']*)["']/g;
    const dynamics = /\bimport\(\s*["']([^"'./][^"']*)["']\s*\)/g;
    const requires = /\brequire(?:\.resolve)?\(\s*["']([^"'./][^"']*)["']\s*\)/g;
    for (const re of [statics, dynamics, requires]) for (const m of text.matchAll(re)) out.push(m[1]!);
    return out;
  }

  function packageOf(specifier: string): string {
    const parts = specifier.split("/");
    return specifier.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }

  it("resolves every import under bin/ and services/ to a dependency or a Node built-in", () => {
    const files = ["bin", "services"].flatMap((dir) =>
      (readdirSync(join(REPO, dir), { recursive: true }) as string[])
        .filter((f) => /\.(ts|mts|mjs|js)$/.test(f))
        .map((f) => join(REPO, dir, f)),
    );
    expect(files.length).toBeGreaterThan(20);
    const missing = new Set<string>();
    for (const file of files) {
      for (const specifier of runtimeImports(readFileSync(file, "utf8"))) {
        const name = packageOf(specifier.replace(/^node:/, ""));
        if (!builtinModules.includes(name) && !(name in pkg.dependencies)) missing.add(`${name} (${file})`);
      }
    }
    expect([...missing]).toEqual([]);
    expect(pkg.dependencies).toHaveProperty("tsx");
  });
});
