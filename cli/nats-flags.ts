/**
 * The NATS flags every command that talks to NATS shares (`--nats`, credentials, TLS), and their
 * validation: settings from flags, then `RESIN_NATS_*`; a bad one is a usage error that names
 * the flag or variable it came from, and its value (secrets hidden).
 */
import { accessSync, constants } from "node:fs";
import { type Command, Option } from "commander";
import { NATS_ENV, NatsSettings, natsSettingsFrom } from "../lib/nats.ts";
import { CliError } from "./errors.ts";

export interface NatsFlags {
  /** URL list; `true` for a bare `--nats` (then RESIN_NATS_URL or the default server). */
  nats?: string | true;
  natsToken?: string;
  natsUser?: string;
  natsPass?: string;
  natsCreds?: string;
  natsTlsCa?: string;
  natsTlsCert?: string;
  natsTlsKey?: string;
}

const FLAG: Record<keyof NatsSettings, string> = {
  servers: "--nats",
  name: "name",
  token: "--nats-token",
  user: "--nats-user",
  pass: "--nats-pass",
  creds: "--nats-creds",
  tlsCa: "--nats-tls-ca",
  tlsCert: "--nats-tls-cert",
  tlsKey: "--nats-tls-key",
};
const SECRET = new Set<string>(["token", "pass"]);

/** Credentials and TLS options (`--nats` itself differs per command). Values also come from RESIN_NATS_*. */
export function addNatsAuthOptions(cmd: Command): Command {
  const options: [string, string][] = [
    ["--nats-token <token>", "NATS auth token (env RESIN_NATS_TOKEN)"],
    ["--nats-user <user>", "NATS user (env RESIN_NATS_USER)"],
    ["--nats-pass <password>", "NATS password (env RESIN_NATS_PASS)"],
    ["--nats-creds <file>", "NATS credentials file, JWT + nkey seed (env RESIN_NATS_CREDS)"],
    ["--nats-tls-ca <file>", "CA bundle that verifies the NATS server (env RESIN_NATS_TLS_CA)"],
    ["--nats-tls-cert <file>", "client certificate for mutual TLS (env RESIN_NATS_TLS_CERT)"],
    ["--nats-tls-key <file>", "client key for mutual TLS (env RESIN_NATS_TLS_KEY)"],
  ];
  for (const [flags, help] of options) cmd.addOption(new Option(flags, help));
  return cmd;
}

/** Validated connection settings from the flags, then the environment. */
export function natsSettingsFromFlags(
  flags: NatsFlags,
  name: string,
  env: NodeJS.ProcessEnv = process.env,
): NatsSettings {
  const given: Partial<Record<keyof NatsSettings, string>> = {
    servers: flags.nats === true ? undefined : flags.nats,
    token: flags.natsToken,
    user: flags.natsUser,
    pass: flags.natsPass,
    creds: flags.natsCreds,
    tlsCa: flags.natsTlsCa,
    tlsCert: flags.natsTlsCert,
    tlsKey: flags.natsTlsKey,
  };
  if (typeof flags.nats === "string" && flags.nats.trim() === "")
    throw new CliError('--nats must be NATS server URL(s) such as nats://127.0.0.1:4222, got ""');
  const raw = natsSettingsFrom(given, env);
  const source = (key: keyof NatsSettings): string => {
    const flag = FLAG[key];
    const envName = NATS_ENV[key];
    if (given[key] !== undefined && given[key] !== "") return flag;
    return env[envName] !== undefined && env[envName] !== "" ? envName : `${flag} (or ${envName})`;
  };
  const shown = (key: keyof NatsSettings) =>
    raw[key] === undefined ? "" : SECRET.has(key) ? " (value hidden)" : `, got "${raw[key]}"`;

  const parsed = NatsSettings.safeParse({ name, ...raw });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = String(issue.path[0] ?? "servers") as keyof NatsSettings;
    throw new CliError(`${source(key)}: ${issue.message}${shown(key)}`);
  }
  const settings = parsed.data;
  for (const server of settings.servers.split(",")) {
    const u = server.trim();
    let ok = false;
    try {
      const url = new URL(u.includes("://") ? u : `nats://${u}`);
      ok = (url.protocol === "nats:" || url.protocol === "tls:") && url.hostname !== "";
    } catch {
      ok = false;
    }
    if (!ok)
      throw new CliError(
        `${source("servers")} must be NATS server URL(s) such as nats://127.0.0.1:4222 (comma separated), got "${settings.servers}"`,
      );
  }
  if (settings.pass !== undefined && settings.user === undefined)
    throw new CliError(`${source("pass")} needs a user (--nats-user or ${NATS_ENV.user})`);
  for (const key of ["creds", "tlsCa", "tlsCert", "tlsKey"] as const) {
    const path = settings[key];
    if (path === undefined) continue;
    try {
      accessSync(path, constants.R_OK);
    } catch (err) {
      throw new CliError(
        `${source(key)}: cannot read "${path}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  }
  return settings;
}
