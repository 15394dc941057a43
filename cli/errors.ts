import { type Command, CommanderError } from "commander";

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

/** Parses and runs a command line; sets the exit code, prints a CliError without its stack. */
export async function runProgram(program: Command, argv: string[]): Promise<void> {
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
