#!/usr/bin/env node
// Runs the TypeScript CLI directly through tsx's loader: no build step, so the
// command always matches the sources in the tree.
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// A reader that stops early (`resin replay ... | head`) closes the pipe: stop quietly, as Unix tools do.
process.stdout.on("error", (err) => {
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * `resin agent` runs on every host within a memory budget: it takes the plain-JS bundle
 * (scripts/build-agent.mjs) when that is newer than every source it was built from, and otherwise
 * loads only the agent's sources, not the whole CLI.
 */
function freshAgentBundle() {
  const bundle = join(root, "dist", "resin-agent.mjs");
  const inputs = join(root, "dist", "resin-agent.inputs.json");
  if (!existsSync(bundle) || !existsSync(inputs)) return undefined;
  const builtAt = statSync(bundle).mtimeMs;
  for (const file of JSON.parse(readFileSync(inputs, "utf8"))) {
    const path = join(root, file);
    if (!existsSync(path) || statSync(path).mtimeMs > builtAt) return undefined;
  }
  return bundle;
}

if (process.argv[2] === "agent") {
  const bundle = freshAgentBundle();
  if (bundle !== undefined) {
    await import(bundle);
  } else {
    const { register } = await import("tsx/esm/api");
    register();
    const { agentMain } = await import("../cli/agent-main.ts");
    await agentMain(process.argv);
  }
} else {
  const { register } = await import("tsx/esm/api");
  register();
  const { main } = await import("../cli/main.ts");
  await main(process.argv);
}
