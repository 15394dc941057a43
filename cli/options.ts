import { Option } from "commander";
import { CliError } from "./errors.ts";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "500ms", "30s", "5m", "1h", "2d" (or a bare number of ms) for a flag; CliError names the flag. */
export function parseDurationMs(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new CliError(`${flag}: expected a duration like 30s, 5m, 1h or 2d (got "${text}")`);
  const ms = Number(m[1]) * UNITS[m[2] ?? "ms"]!;
  if (!Number.isFinite(ms)) throw new CliError(`${flag}: duration out of range (got "${text}")`);
  return Math.round(ms);
}

/** An integer flag within [min, max]; CliError names the flag and the value. */
export function intFlag(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < min || n > max)
    throw new CliError(`${flag} must be an integer from ${min} to ${max}, got "${value}"`);
  return n;
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/** `--log-level` (env RESIN_LOG_LEVEL, default info), as every long-running command takes it. */
export function logLevelOption(): Option {
  return new Option("--log-level <level>", "fatal, error, warn, info, debug or trace")
    .env("RESIN_LOG_LEVEL")
    .default("info");
}

/** Checks a --log-level value; CliError names the flag, the levels and the value. */
export function checkLogLevel(level: string): void {
  if (!LOG_LEVELS.includes(level))
    throw new CliError(`--log-level: expected one of ${LOG_LEVELS.join(", ")} (got "${level}")`);
}
