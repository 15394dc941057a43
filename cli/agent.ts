/**
 * `resin agent`: the Linux agent on a host (agent/): memory telemetry from /proc to JetStream,
 * heap snapshots on request, and the mitigations this host's config allows.
 */
import { type Command, Option } from "commander";
import { pino } from "pino";
import { Agent } from "../agent/agent.ts";
import { type AgentConfig, loadAgentConfig, parseAgentConfig } from "../agent/config.ts";
import { startMitigation } from "../agent/mitigate.ts";
import { defaultHostId } from "../agent/sampler.ts";
import { SUBJECT_TOKEN, ValidationError } from "../schemas/common.ts";
import { CliError, EXIT } from "./errors.ts";
import { addNatsAuthOptions, type NatsFlags, natsSettingsFromFlags } from "./nats-flags.ts";
import { checkLogLevel, intFlag, logLevelOption, parseDurationMs } from "./options.ts";

interface AgentFlags extends NatsFlags {
  config?: string;
  host?: string;
  interval?: string;
  dryRun?: boolean;
  print?: boolean;
  once?: boolean;
  metricsPort?: string;
  logLevel: string;
}

const EXAMPLE = `{
  "attrs": { "region": "westeurope", "cluster": "c17", "hw": "gen7" },
  "interval": "1m",
  "vms": { "command": ["sh", "-c", "virsh list --name | grep -c ."] },
  "components": [
    { "component": "checkout", "unit": "^checkout\\\\.service$", "version": "4.2.0",
      "snapshot": { "kind": "pprof-http", "url": "http://127.0.0.1:6060/debug/pprof/heap" } },
    { "component": "api", "cmdline": "node .*/api/server\\\\.js", "process": "api",
      "snapshot": { "kind": "node-inspector" } }
  ],
  "mitigation": {
    "allow": [
      { "action": "restart-service", "component": "checkout" },
      { "action": "restart-process", "component": "api",
        "command": ["node", "/srv/api/server.js"], "logFile": "/var/log/api.log" }
    ]
  }
}`;

export function registerAgent(program: Command): void {
  const cmd = program
    .command("agent")
    .description(
      "Run the Linux agent on this host: every interval, the private memory of each process (from /proc) " +
        "grouped by component, and kernel memory, published as telemetry v1 to resin.telemetry.<component>.<host>; " +
        "heap profiles on request (resin.agent.<host>.snapshot); the mitigations the config allows (resin.agent.<host>.mitigate).",
    )
    .addOption(
      new Option("--config <file>", 'agent config (JSON; see below and README "The Linux agent")').env(
        "RESIN_AGENT_CONFIG",
      ),
    )
    .addOption(
      new Option(
        "--nats <urls>",
        "NATS server URL(s), comma separated (env RESIN_NATS_URL; else the config's nats) [default: nats://127.0.0.1:4222]",
      ),
    )
    .addOption(
      new Option("--host <id>", "host id in telemetry and subjects [default: the hostname]").env(
        "RESIN_HOST",
      ),
    )
    .addOption(
      new Option("--interval <duration>", "sampling interval, e.g. 30s, 1m, 5m [default: config, else 5m]"),
    )
    .addOption(new Option("--dry-run", "refuse every mitigation, logging what it would have done"))
    .addOption(new Option("--print", "also write each telemetry message to stdout as NDJSON"))
    .addOption(new Option("--once", "sample once, print the messages (NDJSON) and exit; no NATS"))
    .addOption(
      new Option(
        "--metrics-port <port>",
        "port of /metrics and /healthz, 0: off [default: config, else 9465]",
      ),
    )
    .addOption(logLevelOption());
  addNatsAuthOptions(cmd);
  cmd
    .addHelpText(
      "after",
      `
What it reports, per process: anonymous resident memory (RssAnon; "memory": "uss" or "pss" for
smaps_rollup), its start time, and its component: the first config rule that matches its name,
command line or systemd unit, else its systemd unit (cgroup v2), else its name ("unmatched": "skip"
reports only the configured components). Kernel threads, zombies and processes under
"minProcessBytes" (1MiB) are left out. Kernel memory (SUnreclaim, VmallocUsed, slab caches) is
the component "kernel". At most 1024 processes per component and interval: the largest.
While NATS is away, telemetry is buffered ("bufferMessages", oldest dropped and counted).

Mitigations run only when a rule of "mitigation.allow" names the action and the component, and
then only on a process the agent itself puts in that component; everything else is refused.

Example config:
${EXAMPLE}

Examples:
  resin agent --once --config agent.json            # what would be sent, once
  resin agent --config agent.json --nats nats://resin-nats:4222
  resin agent --config agent.json --dry-run          # telemetry and snapshots, no mitigation`,
    )
    .action(async (flags: AgentFlags) => {
      await runAgent(flags);
    });
}

function configFrom(flags: AgentFlags): AgentConfig {
  let config: AgentConfig;
  try {
    config = flags.config !== undefined ? loadAgentConfig(flags.config) : parseAgentConfig({});
  } catch (err) {
    throw new CliError(
      (err as Error).message,
      err instanceof ValidationError ? EXIT.invalidInput : EXIT.usage,
    );
  }
  if (flags.interval !== undefined) {
    const ms = parseDurationMs(flags.interval, "--interval");
    if (ms < 100) throw new CliError(`--interval must be at least 100ms, got "${flags.interval}"`);
    config = { ...config, interval: ms };
  }
  if (flags.metricsPort !== undefined)
    config = { ...config, metricsPort: intFlag("--metrics-port", flags.metricsPort, 0, 65535) };
  if (flags.dryRun === true) config = { ...config, mitigation: { ...config.mitigation, dryRun: true } };
  return config;
}

async function runAgent(flags: AgentFlags): Promise<void> {
  checkLogLevel(flags.logLevel);
  const config = configFrom(flags);
  const host = flags.host ?? config.host ?? defaultHostId();
  if (!SUBJECT_TOKEN.test(host)) throw new CliError(`--host must match [A-Za-z0-9_-]{1,128}, got "${host}"`);
  const print = (m: unknown) => process.stdout.write(`${JSON.stringify(m)}\n`);

  if (flags.once === true) {
    const log = pino(
      { level: flags.logLevel, base: { command: "agent" } },
      pino.destination({ dest: 2, sync: true }),
    );
    const agent = await Agent.start({
      config: { ...config, metricsPort: 0 },
      host,
      nats: undefined,
      log,
      print,
    });
    await agent.passNow();
    await agent.stop(0);
    return;
  }
  const nats = natsSettingsFromFlags(
    { ...flags, nats: flags.nats ?? (process.env.RESIN_NATS_URL ? undefined : config.nats) },
    `resin-agent-${host}`,
  );
  // With --print, stdout carries the telemetry; the logs go to stderr.
  const log = pino(
    { level: flags.logLevel, base: { command: "agent", host } },
    pino.destination(flags.print ? 2 : 1),
  );
  const stop = new AbortController();
  const onSignal = (signal: string) => {
    if (stop.signal.aborted) process.exit(EXIT.failure);
    log.info({ signal }, "stopping");
    stop.abort();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    const agent = await Agent.start({
      config,
      host,
      nats,
      log,
      ...(flags.print === true ? { print } : {}),
      services: async (nc, sampler) => [
        await startMitigation(nc, { host, config, identify: (pid) => sampler.identify(pid), log }),
      ],
    });
    await new Promise<void>((resolve) => {
      if (stop.signal.aborted) resolve();
      stop.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    await agent.stop();
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
}
