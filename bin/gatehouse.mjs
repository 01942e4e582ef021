#!/usr/bin/env node
// Entry point of the `gatehouse` command. Sources are TypeScript run through tsx's loader, so a
// fresh clone needs nothing but `npm install`.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../services/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
