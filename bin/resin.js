#!/usr/bin/env node
// Runs the TypeScript CLI directly through tsx's loader: no build step, so the
// command always matches the sources in the tree.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../cli/main.ts");
await main(process.argv);
