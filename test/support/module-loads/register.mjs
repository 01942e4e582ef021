// `node --import <this file>`: records the URL of every ES module the process loads, one a line,
// into the file named by GATEHOUSE_TEST_MODULE_LOG. Tests use it to prove what a process never
// loads (the tracing SDK with tracing off). The hooks run on their own thread, so they write the
// file themselves.
import { register } from "node:module";

register("./hooks.mjs", import.meta.url, { data: { file: process.env.GATEHOUSE_TEST_MODULE_LOG } });
