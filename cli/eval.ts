import type { Command } from "commander";

export function registerEval(program: Command): void {
  program
    .command("eval")
    .description("(under construction)")
    .action(() => {
      throw new Error("resin eval is not built yet");
    });
}
