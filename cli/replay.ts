import type { Command } from "commander";

export function registerReplay(program: Command): void {
  program
    .command("replay")
    .description("(under construction)")
    .action(() => {
      throw new Error("resin replay is not built yet");
    });
}
