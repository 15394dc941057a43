/**
 * The Linux agent's side of mitigation: the allowlist it gives the MitigationResponder
 * (lib/agent/mitigate-responder.ts), from its own config, and the `execute` that carries out
 * an allowed command on this host. The responder refuses anything not on the allowlist before
 * `execute` runs; `execute` checks again against the rule itself (the process must be one the
 * agent puts in the command's component, and match the rule's process pattern), so a command
 * for pid 1 under an allowed component name does nothing.
 *
 *   const responder = await startMitigation(nc, { host, config, identify: (pid) => sampler.identify(pid), log });
 *
 * With `mitigation.dryRun` (resin agent --dry-run) every command is refused as not-allowed,
 * with what it would have done, so resin does not count it as done.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { MitigateExecuteError, type MitigateRequest } from "../lib/agent/mitigate-protocol.ts";
import {
  agentAllows,
  type MitigationAllowlist,
  MitigationResponder,
  type MitigationResponderOptions,
} from "../lib/agent/mitigate-responder.ts";
import type { AgentConfig, MitigationRule } from "./config.ts";
import type { ProcessIdentity } from "./sampler.ts";

/** The responder's allowlist: per action, the components the config allows it for. */
export function allowlistOf(rules: readonly MitigationRule[]): MitigationAllowlist {
  const out: Record<string, string[]> = {};
  const add = (action: string, entry: string) => {
    const list = out[action] ?? [];
    if (!list.includes(entry)) list.push(entry);
    out[action] = list;
  };
  for (const r of rules) {
    if (r.action === "custom") add("custom", `${r.component}/${r.script}`);
    else if ("components" in r) for (const c of r.components) add(r.action, c);
    else add(r.action, r.component);
  }
  return out as MitigationAllowlist;
}

/** Result of a command the executor runs to completion. */
export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

export interface ExecutorOptions {
  rules: readonly MitigationRule[];
  dryRun: boolean;
  identify: (pid: number) => ProcessIdentity | undefined;
  /** Runs argv to completion with a timeout (systemctl, scripts); injected for tests. */
  run: (argv: readonly string[], timeoutMs: number, env?: NodeJS.ProcessEnv) => Promise<CommandResult>;
  /** Starts argv detached from the agent (a restarted process); resolves with its pid once it runs. */
  launch: (
    argv: readonly string[],
    options: { cwd?: string; env?: Record<string, string>; logFile?: string },
  ) => Promise<number>;
  signal: (pid: number, signal: NodeJS.Signals) => void;
  /** Polling period while waiting for a process to exit, ms. */
  pollMs: number;
  log?: Logger;
}

/** Runs a command, killing it after `timeoutMs`; output is kept up to 64 KiB for the reply. */
export function runCommand(
  argv: readonly string[],
  timeoutMs: number,
  env?: NodeJS.ProcessEnv,
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    let output = "";
    const child: ChildProcess = spawn(cmd!, args, {
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeoutMs,
      killSignal: "SIGKILL",
      ...(env !== undefined ? { env } : {}),
    });
    const keep = (d: Buffer) => {
      if (output.length < 65_536) output += d.toString();
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal, output: output.trim() }));
  });
}

/** Starts a process in its own session, detached: it outlives the agent, as a service would. */
export function launchDetached(
  argv: readonly string[],
  options: { cwd?: string; env?: Record<string, string>; logFile?: string },
): Promise<number> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    const fd = options.logFile !== undefined ? openSync(options.logFile, "a") : undefined;
    try {
      const child = spawn(cmd!, args, {
        detached: true,
        stdio: ["ignore", fd ?? "ignore", fd ?? "ignore"],
        ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
        env: { ...process.env, ...options.env },
      });
      child.once("error", reject);
      child.once("spawn", () => {
        child.unref();
        resolve(child.pid!);
      });
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  });
}

export const DEFAULT_EXECUTOR_OPTIONS = {
  run: runCommand,
  launch: launchDetached,
  signal: (pid: number, signal: NodeJS.Signals) => process.kill(pid, signal),
  pollMs: 100,
} satisfies Partial<ExecutorOptions>;

const describeArgv = (argv: readonly string[]) =>
  argv.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(" ");

export class LinuxMitigationExecutor {
  private readonly options: ExecutorOptions;

  constructor(options: Pick<ExecutorOptions, "rules" | "dryRun" | "identify"> & Partial<ExecutorOptions>) {
    this.options = { ...DEFAULT_EXECUTOR_OPTIONS, ...options };
  }

  /** The MitigationExecutor: carries out `req` or throws a MitigateExecuteError saying why not. */
  readonly execute = async (req: MitigateRequest): Promise<{ detail?: string }> => {
    const rule = this.ruleFor(req);
    const plan = this.plan(req, rule);
    if (this.options.dryRun)
      throw new MitigateExecuteError("not-allowed", `agent runs in dry-run mode: would ${plan.describe}`);
    this.options.log?.warn(
      {
        id: req.id,
        action: req.action,
        component: req.component,
        pid: req.pid,
        suspect: req.suspect,
        reason: req.reason,
      },
      `mitigation: ${plan.describe}`,
    );
    return { detail: await plan.run() };
  };

  private ruleFor(req: MitigateRequest): MitigationRule {
    // The rule that allows it, by the responder's own matching (the allowlist is made of the rules).
    const rule = this.options.rules.find(
      (r) => r.action === req.action && agentAllows(allowlistOf([r]), req.action, req.component, req.script),
    );
    if (rule === undefined)
      throw new MitigateExecuteError(
        "not-allowed",
        `${req.action} is not in this agent's config for ${req.component}`,
      );
    return rule;
  }

  /** The process a command names, checked against what the agent sees: the same component, and the rule's pattern. */
  private target(req: MitigateRequest, pattern?: string): ProcessIdentity {
    const pid = req.pid;
    if (pid === undefined) throw new MitigateExecuteError("bad-request", `${req.action} needs a pid`);
    const identity = this.options.identify(pid);
    if (identity === undefined)
      throw new MitigateExecuteError("no-such-process", `no process ${pid} on this host`);
    if (
      identity.component !== req.component ||
      (req.process !== undefined && identity.process !== req.process)
    )
      throw new MitigateExecuteError(
        "no-such-process",
        `process ${pid} is ${identity.process} of component ${identity.component}, not ${req.process ?? "a process"} of ${req.component}`,
      );
    if (pattern !== undefined && !new RegExp(pattern).test(identity.process))
      throw new MitigateExecuteError(
        "not-allowed",
        `process ${identity.process} (pid ${pid}) does not match the allowed pattern ${JSON.stringify(pattern)}`,
      );
    return identity;
  }

  private plan(req: MitigateRequest, rule: MitigationRule): { describe: string; run: () => Promise<string> } {
    switch (rule.action) {
      case "restart-process": {
        const t = this.target(req, rule.process);
        const then = rule.command !== undefined ? ` and start ${describeArgv(rule.command)}` : "";
        return {
          describe: `stop ${t.process} (pid ${t.pid}) with ${rule.signal}${then}`,
          run: () => this.restartProcess(t, rule),
        };
      }
      case "restart-service": {
        const unit =
          (req.pid !== undefined ? this.target(req).unit : undefined) ??
          rule.unit ??
          `${req.component}.service`;
        const argv = ["systemctl", "restart", unit];
        return { describe: describeArgv(argv), run: () => this.check(argv, rule.timeoutMs) };
      }
      case "custom": {
        const env = {
          ...process.env,
          RESIN_COMPONENT: req.component,
          RESIN_PROCESS: req.process ?? "",
          RESIN_PID: req.pid !== undefined ? String(req.pid) : "",
          RESIN_SUSPECT: req.suspect,
        };
        return {
          describe: `run ${rule.script}: ${describeArgv(rule.command)}`,
          run: () => this.check(rule.command, rule.timeoutMs, env),
        };
      }
      case "migrate-vms":
        return {
          describe: `migrate VMs: ${describeArgv(rule.command)}`,
          run: () => this.check(rule.command, rule.timeoutMs),
        };
      case "soft-reboot": {
        const argv = ["systemctl", rule.method];
        // The host goes down when it works: the reply may never be sent, and resin's timeout decides.
        return { describe: describeArgv(argv), run: () => this.check(argv, 120_000) };
      }
      default: {
        const argv = ["systemctl", "reboot"];
        return { describe: describeArgv(argv), run: () => this.check(argv, 120_000) };
      }
    }
  }

  private async check(argv: readonly string[], timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<string> {
    let r: CommandResult;
    try {
      r = await this.options.run(argv, timeoutMs, env);
    } catch (err) {
      throw new MitigateExecuteError(
        "failed",
        `cannot run ${describeArgv(argv)}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    if (r.code !== 0)
      throw new MitigateExecuteError(
        "failed",
        `${describeArgv(argv)} ${r.signal !== null ? `was killed by ${r.signal} (timeout ${timeoutMs} ms?)` : `exited with ${r.code}`}${r.output ? `: ${r.output.slice(-500)}` : ""}`,
      );
    return `${describeArgv(argv)}: ok${r.output ? ` (${r.output.slice(-200)})` : ""}`;
  }

  /** Whether the process is still the same one (pid reuse is caught by its start time). */
  private alive(t: ProcessIdentity): boolean {
    const now = this.options.identify(t.pid);
    return now !== undefined && now.startedAt === t.startedAt;
  }

  private async waitExit(t: ProcessIdentity, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (this.alive(t)) {
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, this.options.pollMs));
    }
    return true;
  }

  private async restartProcess(
    t: ProcessIdentity,
    rule: Extract<MitigationRule, { action: "restart-process" }>,
  ): Promise<string> {
    const send = (signal: NodeJS.Signals) => {
      try {
        this.options.signal(t.pid, signal);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ESRCH") return;
        throw new MitigateExecuteError(
          "failed",
          `cannot send ${signal} to ${t.pid}: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
    };
    send(rule.signal);
    let how: string = rule.signal;
    if (!(await this.waitExit(t, rule.graceMs))) {
      send("SIGKILL");
      how = `${rule.signal}, then SIGKILL after ${rule.graceMs} ms`;
      if (!(await this.waitExit(t, 10_000)))
        throw new MitigateExecuteError(
          "failed",
          `process ${t.pid} (${t.process}) did not exit after SIGKILL`,
        );
    }
    const stopped = `stopped ${t.process} (pid ${t.pid}, ${how})`;
    if (rule.command === undefined) return stopped;
    let pid: number;
    try {
      pid = await this.options.launch(rule.command, {
        ...(rule.cwd !== undefined ? { cwd: rule.cwd } : {}),
        ...(rule.env !== undefined ? { env: rule.env } : {}),
        ...(rule.logFile !== undefined ? { logFile: rule.logFile } : {}),
      });
    } catch (err) {
      throw new MitigateExecuteError(
        "failed",
        `${stopped}, but ${describeArgv(rule.command)} did not start: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    return `${stopped}; started pid ${pid}: ${describeArgv(rule.command)}`;
  }
}

/** The mitigation responder of the Linux agent on `nc`, from its config. */
export async function startMitigation(
  nc: NatsConnection,
  options: {
    host: string;
    config: AgentConfig;
    identify: (pid: number) => ProcessIdentity | undefined;
    log?: Logger;
  } & Partial<Pick<MitigationResponderOptions, "now">>,
): Promise<MitigationResponder> {
  const { config, log } = options;
  const executor = new LinuxMitigationExecutor({
    rules: config.mitigation.allow,
    dryRun: config.mitigation.dryRun,
    identify: options.identify,
    ...(log !== undefined ? { log } : {}),
  });
  return await MitigationResponder.start(nc, {
    host: options.host,
    allowlist: allowlistOf(config.mitigation.allow),
    execute: executor.execute,
    ...(log !== undefined ? { log } : {}),
    ...(options.now !== undefined ? { now: options.now } : {}),
  });
}
