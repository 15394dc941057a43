#!/usr/bin/env node
// Runs the TypeScript CLI directly through tsx's loader: no build step, so the
// command always matches the sources in the tree.
import { register } from "tsx/esm/api";

register();
// A reader that stops early (`resin replay ... | head`) closes the pipe: stop quietly, as Unix tools do.
process.stdout.on("error", (err) => {
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});
const { main } = await import("../cli/main.ts");
await main(process.argv);
