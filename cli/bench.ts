import type { Command } from "commander";

export function registerBench(program: Command): void {
  program
    .command("bench")
    .description("(under construction)")
    .action(() => {
      throw new Error("resin bench is not built yet");
    });
}
