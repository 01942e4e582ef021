#!/usr/bin/env node
// Measures what issue #5 sets as the sidecar's footprint target (idle RSS under 80 MB, ready within
// a second): spawns `node bin/gatehouse.mjs sidecar` against a running token service, times spawn →
// first 200 from /readyz (and the CPU time the child used by then, which other load on the machine
// does not inflate the way it does wall time), waits idle, reads VmRSS from /proc/<pid>/status and
// stops it; per runtime (the bundle, and tsx via GATEHOUSE_RUNTIME=tsx), with and without REDIS_URL.
//
//   node scripts/sidecar-footprint.mjs --token-service http://127.0.0.1:7480 [--issuer URL]
//     [--redis redis://127.0.0.1:6379] [--runs 3] [--idle 3]
//
// Linux only (/proc). The upstream is a throwaway HTTP server in this process; the revocation stream
// read with --redis is `gatehouse:footprint:<pid>` so a real one is not touched.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import * as http from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: {
    "token-service": { type: "string" },
    issuer: { type: "string", default: "https://auth.test" },
    redis: { type: "string" },
    runs: { type: "string", default: "3" },
    idle: { type: "string", default: "3" },
  },
});
if (values["token-service"] === undefined) {
  console.error(
    "usage: node scripts/sidecar-footprint.mjs --token-service URL [--redis URL] [--runs N] [--idle S]",
  );
  process.exit(2);
}

const listen = (server) => new Promise((r) => server.listen(0, "127.0.0.1", () => r(server.address().port)));
const freePort = async () => {
  const s = http.createServer();
  const port = await listen(s);
  await new Promise((r) => s.close(r));
  return port;
};
const status = (port, path) =>
  new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("error", () => resolve(0));
  });
/** CPU time (user + system) the process has used, in ms: start-up cost that other load does not inflate. */
const cpuMs = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
};
const rssMb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) / 1024;

const upstream = http.createServer((_req, res) => res.end("ok"));
const upstreamPort = await listen(upstream);

async function once(runtime, redis) {
  const [proxyPort, controlPort] = [await freePort(), await freePort()];
  const started = performance.now();
  const child = spawn(process.execPath, [join(ROOT, "bin/gatehouse.mjs"), "sidecar"], {
    env: {
      PATH: process.env.PATH,
      GATEHOUSE_RUNTIME: runtime,
      ...(process.env.GATEHOUSE_BUNDLE_DIR ? { GATEHOUSE_BUNDLE_DIR: process.env.GATEHOUSE_BUNDLE_DIR } : {}),
      GATEHOUSE_ISSUER: values.issuer,
      GATEHOUSE_TOKEN_SERVICE_URL: values["token-service"],
      GATEHOUSE_UPSTREAM: `http://127.0.0.1:${upstreamPort}`,
      GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${proxyPort}`,
      GATEHOUSE_CONTROL_LISTEN: `127.0.0.1:${controlPort}`,
      GATEHOUSE_LOG_LEVEL: "warn",
      GATEHOUSE_LOG_PRETTY: "false",
      ...(redis
        ? { REDIS_URL: redis, GATEHOUSE_REVOCATION_STREAM: `gatehouse:footprint:${process.pid}` }
        : { GATEHOUSE_REVOCATION: "none" }),
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  try {
    while ((await status(controlPort, "/readyz")) !== 200) {
      if (child.exitCode !== null) throw new Error(`sidecar exited with ${child.exitCode}`);
      if (performance.now() - started > 30_000) throw new Error("sidecar not ready within 30 s");
      await new Promise((r) => setTimeout(r, 2));
    }
    const readyMs = performance.now() - started;
    const readyCpuMs = cpuMs(child.pid);
    await new Promise((r) => setTimeout(r, Number(values.idle) * 1000));
    return { readyMs, readyCpuMs, rss: rssMb(child.pid) };
  } finally {
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await exited;
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const runtime of ["bundle", "tsx"]) {
  for (const redis of [undefined, values.redis]) {
    const results = [];
    for (let i = 0; i < Number(values.runs); i++) results.push(await once(runtime, redis));
    const ready = results.map((r) => r.readyMs);
    const rss = results.map((r) => r.rss);
    const cpu = results.map((r) => r.readyCpuMs);
    console.log(
      `${runtime.padEnd(6)} ${redis ? "REDIS_URL   " : "no REDIS_URL"}  ready ms median ${median(ready).toFixed(0)} ` +
        `(${ready.map((x) => x.toFixed(0)).join(", ")})  CPU ms to ready median ${median(cpu)}  idle RSS MB median ${median(rss).toFixed(1)} ` +
        `(${rss.map((x) => x.toFixed(1)).join(", ")})`,
    );
    if (values.redis === undefined) break;
  }
}
upstream.close();
