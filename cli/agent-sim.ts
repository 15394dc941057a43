/**
 * `resin agent-sim`: the snapshot agents of a simulated fleet. Every host of the simulation
 * answers heap-snapshot requests on resin.agent.<host>.snapshot with profiles from the
 * simulator's heap model at the requests' event time, so `resin run --snapshots` can diagnose
 * a simulated fleet end to end. The fleet is rebuilt from the same flags as `resin simulate`
 * (deterministic), so give both the same scenario, hosts, days, seed and start.
 */
import { type Command, Option } from "commander";
import { pino } from "pino";
import { connectWithRetry } from "../lib/nats.ts";
import { startSimulatedAgents } from "../simulate/agents.ts";
import { createSimulation } from "../simulate/index.ts";
import { CliError } from "./errors.ts";
import { addNatsAuthOptions, type NatsFlags, natsSettingsFromFlags } from "./nats-flags.ts";
import { checkLogLevel, intFlag, logLevelOption } from "./options.ts";
import { type FleetFlags, overridesFromFlags, resolveForCli } from "./simulate.ts";

interface AgentSimFlags extends NatsFlags, FleetFlags {
  only?: string;
  maxTraces: string;
  logLevel: string;
  summary: boolean;
}

export function registerAgentSim(program: Command): void {
  const cmd = program
    .command("agent-sim")
    .description(
      "Run the snapshot agents of a simulated fleet: every host answers heap-snapshot requests " +
        "(resin.agent.<host>.snapshot) with profiles of its simulated processes at the request's event " +
        "time, stored in the Object Store bucket resin_profiles. Give the flags of the `resin simulate` run.",
    )
    .option(
      "--scenario <name|file>",
      "preset or JSON scenario file, as given to resin simulate (default mixed)",
    )
    .option("--hosts <n>", "number of hosts, as given to resin simulate")
    .option("--days <d>", "simulated days, as given to resin simulate")
    .option("--interval <duration>", "sampling interval, as given to resin simulate")
    .option("--seed <n>", "random seed, as given to resin simulate")
    .option("--start <iso>", "simulated start time, as given to resin simulate")
    .addOption(
      new Option(
        "--nats <urls>",
        "NATS server URL(s), comma separated (env RESIN_NATS_URL) [default: nats://127.0.0.1:4222]",
      ),
    )
    .option("--only <hosts>", "answer for these hosts only (comma separated; default: every host)")
    .addOption(new Option("--max-traces <n>", "traces per host at once").default("4"))
    .addOption(logLevelOption());
  addNatsAuthOptions(cmd);
  cmd
    .addHelpText(
      "after",
      `
Simulated agents have no clock: each request carries the event time to profile at, which
\`resin run --snapshots\` sends with its default --snapshot-clock event. A request for a host that
is down at that time, or a pid that is not running then, is refused as a real agent would.
Runs until SIGTERM or SIGINT, then stops its traces and exits.

Example:
  resin simulate --hosts 200 --days 5 --seed 3 --nats nats://127.0.0.1:4222 --speed 3600 &
  resin agent-sim --hosts 200 --days 5 --seed 3 --nats nats://127.0.0.1:4222 &
  resin run --nats nats://127.0.0.1:4222 --snapshots --tickets-dir tickets`,
    )
    .action(async (flags: AgentSimFlags) => {
      await agentSim(flags);
    });
}

async function agentSim(flags: AgentSimFlags): Promise<void> {
  const nats = natsSettingsFromFlags(flags, "resin agent-sim");
  checkLogLevel(flags.logLevel);
  const maxTraces = intFlag("--max-traces", flags.maxTraces, 1, 1000);
  const config = resolveForCli(flags.scenario ?? "mixed", overridesFromFlags(flags));
  const sim = createSimulation(config);
  const only = flags.only
    ?.split(",")
    .map((h) => h.trim())
    .filter((h) => h !== "");
  if (only !== undefined) {
    const known = new Set(sim.hosts.map((h) => h.id));
    const unknown = only.filter((h) => !known.has(h));
    if (unknown.length > 0)
      throw new CliError(
        `--only: no host ${unknown.join(", ")} in this simulation (hosts are like ${sim.hosts[0]?.id})`,
      );
  }
  const log = pino({ level: flags.logLevel, base: { command: "agent-sim" } });

  const stop = new AbortController();
  const onSignal = (signal: string) => {
    log.info({ signal }, "stopping");
    stop.abort();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    const nc = await connectWithRetry(
      nats,
      (attempt, err) => log.warn({ attempt, err: err.message }, "NATS not reachable, retrying"),
      stop.signal,
    );
    const agents = await startSimulatedAgents(nc, sim.plan, {
      maxTraces,
      log,
      ...(only !== undefined ? { hosts: only } : {}),
    });
    log.info(
      { hosts: agents.responders.length, scenario: config.name, seed: config.seed, nats: nats.servers },
      "simulated agents ready",
    );
    await new Promise<void>((resolve) => {
      if (stop.signal.aborted) resolve();
      stop.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    await agents.close();
    await nc.drain().catch(() => undefined);
    log.info(agents.stats(), "simulated agents stopped");
  } catch (err) {
    if (stop.signal.aborted) return;
    throw err;
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
}
