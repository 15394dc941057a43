import { Command } from "commander";
import { registerAgent } from "./agent.ts";
import { registerAgentSim } from "./agent-sim.ts";
import { registerBench } from "./bench.ts";
import { registerDemo } from "./demo.ts";
import { runProgram } from "./errors.ts";
import { registerEval } from "./eval.ts";
import { registerExplain } from "./explain.ts";
import { registerReplay } from "./replay.ts";
import { registerRun } from "./run.ts";
import { registerSimulate } from "./simulate.ts";

export { CliError, EXIT } from "./errors.ts";

export function buildProgram(): Command {
  const program = new Command("resin")
    .description(
      "resin finds memory leaks across a fleet from memory telemetry, names the leaking allocation " +
        "stacks from heap profiles and mitigates them: simulate fleets, replay telemetry through the " +
        "detector, measure it against ground truth, run it live on NATS JetStream, and run the agent on hosts.",
    )
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  registerSimulate(program);
  registerReplay(program);
  registerRun(program);
  registerAgent(program);
  registerAgentSim(program);
  registerEval(program);
  registerExplain(program);
  registerDemo(program);
  registerBench(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  await runProgram(buildProgram(), argv);
}
