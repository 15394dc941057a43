/**
 * `resin agent` on its own: the agent runs on every host, so it loads only what it needs (the
 * whole CLI brings the detector, the simulator and the sinks, some 30 MB more). bin/resin.js
 * comes here for `resin agent`; `npm run build` bundles this file into dist/resin-agent.mjs, which
 * runs without the TypeScript loader.
 */
import { Command } from "commander";
import { registerAgent } from "./agent.ts";
import { runProgram } from "./errors.ts";

export async function agentMain(argv: string[]): Promise<void> {
  const program = new Command("resin")
    .description(
      "resin agent: samples this host's memory and answers resin's snapshot and mitigation requests",
    )
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  registerAgent(program);
  await runProgram(program, argv);
}
