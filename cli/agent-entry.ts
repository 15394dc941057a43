// Entry of the bundled agent (scripts/build-agent.mjs → dist/resin-agent.mjs).
import { agentMain } from "./agent-main.ts";

process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});
await agentMain(process.argv);
