import { Command, CommanderError } from "commander";
import { registerAgent } from "./agent.ts";
import { registerAgentSim } from "./agent-sim.ts";
import { registerBench } from "./bench.ts";
import { registerDemo } from "./demo.ts";
import { registerEval } from "./eval.ts";
import { registerExplain } from "./explain.ts";
import { registerReplay } from "./replay.ts";
import { registerRun } from "./run.ts";
import { registerSimulate } from "./simulate.ts";

/** Exit codes scripts can rely on. */
export const EXIT = { ok: 0, failure: 1, usage: 2, invalidInput: 3 } as const;

/** Error for bad flags or bad input files: printed without a stack, exits with `code`. */
export class CliError extends Error {
  override name = "CliError";
  constructor(
    message: string,
    readonly code: number = EXIT.usage,
  ) {
    super(message);
  }
}

export function buildProgram(): Command {
  const program = new Command("resin")
    .description(
      "resin finds memory leaks across a fleet from memory telemetry: simulate fleets, replay telemetry\n" +
        "through the detector, measure it against ground truth, and run it live on NATS JetStream.",
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
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return;
    }
    if (err instanceof CliError) {
      process.stderr.write(`resin: ${err.message}\n`);
      process.exitCode = err.code;
      return;
    }
    process.stderr.write(`resin: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = EXIT.failure;
  }
}
