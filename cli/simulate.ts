import type { Command } from "commander";

export function registerSimulate(program: Command): void {
  program
    .command("simulate")
    .description("(under construction)")
    .action(() => {
      throw new Error("resin simulate is not built yet");
    });
}
