#!/usr/bin/env node
// Bundles `resin agent` (cli/agent-main.ts and what it imports) into one plain-JS file,
// dist/resin-agent.mjs, so hosts run the agent without the TypeScript loader: tsx alone costs
// ~35 MB of memory, and the agent's budget is 80 MB. bin/resin.js uses the bundle when it is newer
// than the sources it was built from. Run by `npm install` (prepare) and `npm run build`.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
// An output directory may be given (tests build elsewhere); dist/ by default.
const outDir = process.argv[2] ?? join(root, "dist");
const out = join(outDir, "resin-agent.mjs");
mkdirSync(dirname(out), { recursive: true });
const result = await build({
  entryPoints: [join(root, "cli", "agent-entry.ts")],
  outfile: out,
  // Metafile paths are relative to this directory: the repository, wherever the script runs from.
  absWorkingDir: root,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  metafile: true,
  logLevel: "warning",
  // Bundled CommonJS packages call require() for Node's modules; ESM has no require of its own.
  banner: {
    js: "import { createRequire as __resinRequire } from 'node:module'; const require = __resinRequire(import.meta.url);",
  },
});
// The sources the bundle was made from, for bin/resin.js's freshness check.
const inputs = Object.keys(result.metafile.inputs).filter((p) => !p.includes("node_modules"));
writeFileSync(join(outDir, "resin-agent.inputs.json"), `${JSON.stringify(inputs)}\n`);
process.stderr.write(`built ${relative(root, out)} from ${inputs.length} source files\n`);
