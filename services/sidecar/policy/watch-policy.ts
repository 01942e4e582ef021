import { type FSWatcher, readFileSync, watch } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { compilePolicy, type Policy } from "./compile-policy.ts";

interface PolicyLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface WatchPolicyOptions {
  /** Quiet time after the last file event before reloading. Default 200 ms. */
  debounceMs?: number;
  logger?: PolicyLogger;
}

export interface PolicyWatcher {
  /** The policy in force: the last one that compiled. */
  current(): Policy;
  /** Reads and compiles the file now; true when a new policy took effect. */
  reload(): Promise<boolean>;
  close(): void;
}

/**
 * Loads a policy file (throwing if the first load fails: a sidecar must not start without the policy
 * it was given), then watches its directory — editors and Kubernetes ConfigMaps replace files rather
 * than write them — and reloads after a debounce. A new file that does not compile is reported
 * through `onError` and the logger, and the old policy stays in force.
 */
export function watchPolicy(
  file: string,
  onChange: (policy: Policy) => void,
  onError: (err: Error) => void,
  options: WatchPolicyOptions = {},
): PolicyWatcher {
  const debounceMs = options.debounceMs ?? 200;
  const log = options.logger;
  /** The text last read; undefined after a failed read, so the next read compiles whatever it finds. */
  let lastText: string | undefined = readFileSync(file, "utf8");
  let policy = compilePolicy(lastText, file);
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  async function reload(): Promise<boolean> {
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (err) {
      lastText = undefined;
      fail(err as Error);
      return false;
    }
    if (closed || text === lastText) return false;
    lastText = text;
    try {
      policy = compilePolicy(text, file);
    } catch (err) {
      fail(err as Error);
      return false;
    }
    log?.info({ file, rules: policy.rules.length }, "route policy reloaded");
    onChange(policy);
    return true;
  }

  function fail(err: Error): void {
    log?.error({ file, err }, "route policy not reloaded; keeping the previous one");
    onError(err);
  }

  const watcher: FSWatcher = watch(dirname(file), { persistent: false }, () => {
    clearTimeout(timer);
    timer = setTimeout(() => void reload(), debounceMs);
  });
  watcher.on("error", (err) => fail(err));

  return {
    current: () => policy,
    reload,
    close() {
      closed = true;
      clearTimeout(timer);
      watcher.close();
    },
  };
}
