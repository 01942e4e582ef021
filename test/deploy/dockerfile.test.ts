import { existsSync, readdirSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { join } from "node:path";
import type { Healthcheck, Label } from "dockerfile-ast";
import { JSONInstruction } from "dockerfile-ast";
import { describe, expect, it } from "vitest";
import { REPO, readRepoFile } from "./deploy-files.ts";
import {
  all,
  args,
  copies,
  DOCKERFILES,
  dockerignored,
  envOf,
  parseDockerfile,
  unquote,
} from "./dockerfile-stages.ts";

const pkg = JSON.parse(readRepoFile("package.json")) as {
  license: string;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** What differs between the two images. */
const IMAGES = [
  {
    role: "token-service" as const,
    title: "gatehouse",
    bundle: "cli",
    ports: ["7400", "7480"],
    cmd: ["--help"],
    // The allocator the benchmarks measured the token service with (bench/lib/image-allocator.ts).
    allocatorEnv: {
      LD_PRELOAD: "/usr/local/lib/libjemalloc.so.2",
      MALLOC_CONF: "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0",
    },
    fromContext: [
      "bin/gatehouse.mjs",
      "bin/sidecar-bundle.mjs",
      "prisma/migrations/",
      "deploy/docker/healthcheck.mjs",
    ],
  },
  {
    role: "sidecar" as const,
    title: "gatehouse-sidecar",
    bundle: "sidecar",
    ports: ["7401", "7402"],
    cmd: ["sidecar"],
    allocatorEnv: {},
    fromContext: ["bin/gatehouse.mjs", "bin/sidecar-bundle.mjs", "deploy/docker/healthcheck.mjs"],
  },
];

it("the single image of every role is gone: one Dockerfile per image", () => {
  expect(existsSync(join(REPO, "deploy/docker/Dockerfile"))).toBe(false);
  expect(
    readdirSync(join(REPO, "deploy/docker"))
      .filter((f) => f.endsWith("Dockerfile"))
      .sort(),
  ).toEqual(["sidecar.Dockerfile", "token-service.Dockerfile"]);
});

describe.each(IMAGES)("deploy/docker/$role.Dockerfile", (image) => {
  const { stages, final, expand } = parseDockerfile(DOCKERFILES[image.role]);
  const builder = stages.find((s) => s.name === "build")!;
  const script = (stage: typeof final) =>
    all(stage, "RUN")
      .map((r) => r.getArgumentsContent() ?? "")
      .join("\n");

  it("is multi-stage, building and running on the same current Node LTS slim base", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const base = expand(final.from.getImage() ?? "");
    const lts = /^node:(\d+)(?:\.\d+)*-(?:bookworm|trixie)-slim(?:@sha256:[0-9a-f]{64})?$/.exec(base);
    expect(
      lts,
      `${base} is a slim Node image (with \`node\` on PATH, which the ENTRYPOINT needs)`,
    ).not.toBeNull();
    const major = Number(lts![1]);
    expect(major % 2 === 0 && major >= 22, `${base} is a current Node LTS`).toBe(true);
    for (const stage of stages) expect(expand(stage.from.getImage() ?? "")).toBe(base);
  });

  it("installs from the lockfile in the build stage only, and removes the package managers", () => {
    const build = script(builder);
    expect(build).toMatch(/\bnpm ci\b/);
    // `npm install` only as the fallback for a lockfile `npm ci` refuses, and never rewriting it.
    for (const m of build.matchAll(/\bnpm (?:install|i)\b[^\n;&|}]*/g)) {
      expect(m[0]).toContain("--no-save");
      expect(build.slice(0, m.index)).toMatch(/npm ci \|\|\s*$/);
    }
    expect(script(final)).not.toMatch(/\bnpm (ci|install|i)\b/);
    expect(script(final)).toMatch(/rm -rf[^&]*\/usr\/local\/lib\/node_modules\/npm/);
  });

  it(`builds its bundle (dist/${image.bundle}) and stages its runtime files in the build stage`, () => {
    const build = script(builder);
    const built = build.search(new RegExp(`node scripts/build\\.mjs --only ${image.bundle}\\b`));
    const staged = build.search(new RegExp(`node scripts/runtime-files\\.mjs ${image.role} /runtime\\b`));
    expect(built, "node scripts/build.mjs --only <bundle>").toBeGreaterThanOrEqual(0);
    expect(staged, "node scripts/runtime-files.mjs <role> /runtime, after the build").toBeGreaterThan(built);
    // The build is stamped with the image's revision (dist/build-info.json).
    expect(build).toMatch(/REVISION="\$\{REVISION\}" node scripts\/build\.mjs/);
    // Built from the sources and scripts copied before it.
    const at = (text: string) =>
      builder.instructions.findIndex(
        (i) => i.getKeyword() === "COPY" && (i.getArgumentsContent() ?? "").split(/\s+/).includes(text),
      );
    const run = builder.instructions.findIndex(
      (i) => i.getKeyword() === "RUN" && (i.getArgumentsContent() ?? "").includes("scripts/build.mjs"),
    );
    for (const source of [
      "services/",
      "bin/",
      "scripts/build.mjs",
      "scripts/bundle.mjs",
      "scripts/runtime-files.mjs",
    ]) {
      expect(at(source), `${source} is copied before the build`).toBeGreaterThanOrEqual(0);
      expect(at(source), `${source} is copied before the build`).toBeLessThan(run);
    }
  });

  it("ships the staged runtime files and, from the context, only the launcher and what the role reads", () => {
    const lines = copies(final);
    const staged = lines.filter((c) => c.from !== null);
    expect(staged).toEqual([{ from: "build", sources: ["/runtime/"], dest: "/app/" }]);
    expect(lines.filter((c) => c.from === null).flatMap((c) => c.sources)).toEqual(image.fromContext);
    // No TypeScript sources, no node_modules of the build context, no local dist/.
    for (const c of lines)
      for (const s of c.sources) expect(s).not.toMatch(/^(services|node_modules|dist)\//);
    expect(dockerignored("dist/sidecar/sidecar.mjs")).toBe(true);
  });

  it("runs the compiled build only: GATEHOUSE_RUNTIME=dist, read-only-root friendly", () => {
    expect(envOf(final)).toEqual({
      NODE_ENV: "production",
      GATEHOUSE_RUNTIME: "dist",
      HOME: "/tmp",
      TMPDIR: "/tmp",
      ...image.allocatorEnv,
    });
  });

  it.runIf(image.role === "token-service")(
    "preloads the jemalloc it installs, at the path its ENV names, with the MALLOC_CONF the benchmarks use",
    async () => {
      const run = script(final);
      expect(run).toMatch(/apt-get install -y --no-install-recommends libjemalloc2\b/);
      expect(run).toMatch(/rm -rf \/var\/lib\/apt\/lists\/\*/);
      const link = /ln -s "\$\(dpkg -L libjemalloc2 \| grep '[^']+'\)" (\S+)/.exec(run);
      expect(link, "links the installed library at a fixed path").not.toBeNull();
      expect(envOf(final).LD_PRELOAD).toBe(link![1]);
      const { imageMallocConf } = await import("../../bench/lib/image-allocator.ts");
      expect(imageMallocConf()).toBe(envOf(final).MALLOC_CONF);
    },
  );

  it("runs as a numeric non-root user", () => {
    const user = all(final, "USER").at(-1);
    expect(user, "a USER in the final stage").toBeDefined();
    const [uid, gid] = args(user!)[0]!.split(":");
    expect(uid).toMatch(/^\d+$/);
    expect(Number(uid)).toBeGreaterThan(0);
    if (gid !== undefined) expect(gid).toMatch(/^\d+$/);
    const last = final.instructions.findLastIndex((i) => i.getKeyword() === "USER");
    expect(final.instructions.slice(last + 1).map((i) => i.getKeyword())).not.toContain("RUN");
  });

  it("enters through the gatehouse command, so manifests pick the role with args", () => {
    const entrypoint = all(final, "ENTRYPOINT").at(-1)!;
    expect(entrypoint).toBeInstanceOf(JSONInstruction);
    expect(args(entrypoint)).toEqual(["node", `/app/${pkg.bin.gatehouse}`]);
    expect(args(all(final, "CMD").at(-1)!)).toEqual(image.cmd);
  });

  it("checks health with the script the image contains", () => {
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

  it(`exposes its own listeners only (${image.ports.join(", ")})`, () => {
    expect(all(final, "EXPOSE").flatMap(args).sort()).toEqual(image.ports);
  });

  it("carries OCI labels, with its image name and the licence of package.json", () => {
    const labels = Object.fromEntries(
      (all(final, "LABEL") as Label[]).flatMap((l) =>
        l.getProperties().map((p) => [p.getName(), unquote(p.getValue())]),
      ),
    );
    for (const key of ["title", "description", "licenses", "version", "revision", "created", "source"]) {
      expect(labels, key).toHaveProperty(`org.opencontainers.image.${key}`);
    }
    expect(labels["org.opencontainers.image.title"]).toBe(image.title);
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
});

describe(".dockerignore", () => {
  it("keeps local state, dependencies, generated code, builds and secrets out of the build context", () => {
    for (const path of [
      ".git/HEAD",
      "node_modules/tsx/package.json",
      ".gatehouse/dev-state.json",
      "services/gen/prisma/client.ts",
      "dist/cli/main.mjs",
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

describe("the production dependency set", () => {
  /** Bare module specifiers that are loaded at run time (type-only imports are erased). */
  function runtimeImports(text: string): { specifier: string; dynamic: boolean }[] {
    const out: { specifier: string; dynamic: boolean }[] = [];
    const statics =
      /(?:^|[\n;])\s*(?:import|export)\s+(?!type\s)(?:[^'";]*?\sfrom\s+)?["']([^"'./][^"']*)["']/g;
    const dynamics = /\bimport\(\s*["']([^"'./][^"']*)["']\s*\)/g;
    const requires = /\brequire(?:\.resolve)?\(\s*["']([^"'./][^"']*)["']\s*\)/g;
    for (const m of text.matchAll(statics)) out.push({ specifier: m[1]!, dynamic: false });
    for (const re of [dynamics, requires])
      for (const m of text.matchAll(re)) out.push({ specifier: m[1]!, dynamic: true });
    return out;
  }

  function packageOf(specifier: string): string {
    const parts = specifier.split("/");
    return specifier.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }

  /** Development dependencies a runtime source may load, only lazily and only on a dev-only path. */
  const LAZY_DEV_ONLY: Record<string, string> = {
    "@electric-sql/pglite": "services/shared/database/pglite.ts",
    "pglite-prisma-adapter": "services/shared/database/pglite.ts",
    tsx: "bin/gatehouse.mjs",
  };

  it("excludes TypeScript, tsx, esbuild, the Prisma CLI, PGlite and pino-pretty", () => {
    for (const name of [
      "typescript",
      "tsx",
      "esbuild",
      "prisma",
      "@electric-sql/pglite",
      "pglite-prisma-adapter",
      "pino-pretty",
    ]) {
      expect(pkg.dependencies, name).not.toHaveProperty(name);
      expect(pkg.devDependencies, name).toHaveProperty(name);
    }
    // package-lock.json agrees: its root entry and the packages' dev flags.
    const lock = JSON.parse(readFileSync(join(REPO, "package-lock.json"), "utf8")) as {
      packages: Record<
        string,
        { dependencies?: Record<string, string>; dev?: boolean; devOptional?: boolean }
      >;
    };
    expect(lock.packages[""]!.dependencies).toEqual(pkg.dependencies);
    for (const name of ["tsx", "esbuild", "@electric-sql/pglite", "pglite-prisma-adapter", "pino-pretty"]) {
      expect(lock.packages[`node_modules/${name}`]?.dev, name).toBe(true);
    }
  });

  it("resolves every import under bin/ and services/ to a dependency or a Node built-in", () => {
    const files = ["bin", "services"].flatMap((dir) =>
      (readdirSync(join(REPO, dir), { recursive: true }) as string[])
        .filter((f) => /\.(ts|mts|mjs|js)$/.test(f))
        .map((f) => join(dir, f)),
    );
    expect(files.length).toBeGreaterThan(20);
    const missing = new Set<string>();
    for (const file of files) {
      for (const { specifier, dynamic } of runtimeImports(readFileSync(join(REPO, file), "utf8"))) {
        const name = packageOf(specifier.replace(/^node:/, ""));
        if (builtinModules.includes(name) || name in pkg.dependencies) continue;
        if (dynamic && LAZY_DEV_ONLY[name] === file) continue;
        missing.add(`${name} (${file})`);
      }
    }
    expect([...missing]).toEqual([]);
  });
});
