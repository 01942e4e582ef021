/**
 * A Dockerfile read the way BuildKit reads it, for the deploy tests: its stages, each stage's COPY
 * instructions (where from, which sources, to where), its ENV, and the build context's .dockerignore
 * rules. Parsed with dockerfile-ast, the parser of the Docker language server.
 */
import { posix } from "node:path";
import {
  type Copy,
  DockerfileParser,
  type From,
  type Instruction,
  JSONInstruction,
  type PropertyInstruction,
} from "dockerfile-ast";
import { readRepoFile } from "./deploy-files.ts";

export interface Stage {
  name: string | null;
  from: From;
  instructions: Instruction[];
}

export interface CopyLine {
  /** A stage name, or null for the build context. */
  from: string | null;
  sources: string[];
  /** Absolute, against the stage's WORKDIR. */
  dest: string;
}

export interface ParsedDockerfile {
  stages: Stage[];
  final: Stage;
  /** Default values of the ARGs declared before the first FROM, expanded in FROM lines. */
  expand(text: string): string;
}

export const DOCKERFILES = {
  "token-service": "deploy/docker/token-service.Dockerfile",
  sidecar: "deploy/docker/sidecar.Dockerfile",
} as const;

export function parseDockerfile(path: string): ParsedDockerfile {
  const dockerfile = DockerfileParser.parse(readRepoFile(path));
  const globalArgs = Object.fromEntries(
    dockerfile.getInitialARGs().flatMap((arg) => {
      const p = arg.getProperty();
      return p ? [[p.getName(), p.getValue() ?? ""]] : [];
    }),
  );
  const stages: Stage[] = [];
  for (const instruction of dockerfile.getInstructions()) {
    if (instruction.getKeyword() === "FROM") {
      const from = instruction as From;
      stages.push({ name: from.getBuildStage(), from, instructions: [] });
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return {
    stages,
    final: stages.at(-1)!,
    expand: (text) =>
      text.replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a: string, b: string) => globalArgs[a ?? b] ?? ""),
  };
}

export function all(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((i) => i.getKeyword() === keyword);
}

export function args(i: Instruction): string[] {
  return i instanceof JSONInstruction
    ? i.getJSONStrings().map((s) => s.getJSONValue())
    : i.getArguments().map((a) => a.getValue());
}

export function unquote(value: string | null): string | null {
  return value?.replace(/^"(.*)"$/s, "$1") ?? null;
}

export function copies(stage: Stage): CopyLine[] {
  const workdir = all(stage, "WORKDIR").at(-1)?.getArguments()[0]?.getValue() ?? "/";
  return (all(stage, "COPY") as Copy[]).map((c) => {
    const values = c
      .getArguments()
      .map((a) => a.getValue())
      .filter((v) => !v.startsWith("--"));
    const dest = values.at(-1)!;
    const absolute = posix.isAbsolute(dest) ? dest : posix.join(workdir, dest);
    return {
      from: c.getFromFlag()?.getValue() ?? null,
      sources: values.slice(0, -1),
      dest: dest.endsWith("/") && absolute !== "/" ? `${absolute.replace(/\/$/, "")}/` : absolute,
    };
  });
}

/** The final stage's environment. */
export function envOf(stage: Stage): Record<string, string | null> {
  return Object.fromEntries(
    all(stage, "ENV").flatMap((e) =>
      (e as PropertyInstruction).getProperties().map((p) => [p.getName(), unquote(p.getValue())]),
    ),
  );
}

/** Docker's .dockerignore rules: the last pattern matching the path or one of its parents wins. */
export function dockerignored(path: string): boolean {
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
