import { describeViolations, SUBJECT_TOKEN, showValue } from "../../schemas/common.ts";
import { checkTelemetry, MAX_PROCESSES, type Telemetry } from "../../schemas/telemetry.ts";

/** A message that could not be used, with the reason: goes to the dead-letter output. */
export interface DeadLetter {
  reason: string;
  /** The raw line or value as received (truncated for very large input). */
  raw: string;
}

export type Decoded = { ok: true; value: Telemetry } | { ok: false; dead: DeadLetter };

/** Lines longer than this are rejected before parsing: 1024 processes fit easily below it. */
export const MAX_LINE_CHARS = 1 << 20;
const RAW_KEEP_CHARS = 4096;

function isInt(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v);
}

/**
 * Tokens that passed the check: every message repeats its host's and component's, and a Set
 * lookup is several times cheaper than the regular expression. A memo of a pure check, bounded.
 */
const goodTokens = new Set<string>();
const MAX_GOOD_TOKENS = 16_384;

function isToken(v: unknown): v is string {
  if (typeof v !== "string") return false;
  if (goodTokens.has(v)) return true;
  if (v.length > 128 || !SUBJECT_TOKEN.test(v)) return false;
  if (goodTokens.size >= MAX_GOOD_TOKENS) goodTokens.clear();
  goodTokens.add(v);
  return true;
}

/**
 * Fast structural check of a parsed telemetry message: true only when the zod schema would
 * accept it too (the tests check both agree). On false, the caller asks zod for the exact
 * violations, so the slow path runs only for bad input.
 */
export function looksValidTelemetry(m: unknown): m is Telemetry {
  if (m === null || typeof m !== "object" || Array.isArray(m)) return false;
  const o = m as Record<string, unknown>;
  if (o.v !== 1) return false;
  const ts = o.ts;
  if (!isInt(ts) || ts < 0) return false;
  if (!isToken(o.host) || !isToken(o.component)) return false;
  const attrs = o.attrs;
  if (attrs !== undefined) {
    if (attrs === null || typeof attrs !== "object" || Array.isArray(attrs)) return false;
    for (const key in attrs) if (typeof (attrs as Record<string, unknown>)[key] !== "string") return false;
  }
  const hm = o.hostMemory;
  if (hm !== undefined) {
    if (hm === null || typeof hm !== "object" || Array.isArray(hm)) return false;
    const { totalBytes, usedBytes } = hm as Record<string, unknown>;
    if (!isInt(totalBytes) || totalBytes < 0 || !isInt(usedBytes) || usedBytes < 0 || usedBytes > totalBytes)
      return false;
  }
  const vms = o.vms;
  if (vms !== undefined && (!isInt(vms) || vms < 0)) return false;
  const procs = o.processes;
  if (!Array.isArray(procs) || procs.length > MAX_PROCESSES) return false;
  for (let i = 0; i < procs.length; i++) {
    const p = procs[i] as Record<string, unknown> | null;
    if (p === null || typeof p !== "object" || Array.isArray(p)) return false;
    const { pid, name, startedAt, bytes } = p;
    if (!isInt(pid) || pid < 0) return false;
    if (typeof name !== "string" || name.length < 1 || name.length > 256) return false;
    if (!isInt(bytes) || bytes < 0) return false;
    if (startedAt !== undefined && (!isInt(startedAt) || startedAt < 0 || startedAt > ts)) return false;
  }
  return true;
}

/** Validates an already-parsed value. */
export function decodeValue(value: unknown, raw?: string): Decoded {
  if (looksValidTelemetry(value)) return { ok: true, value };
  const checked = checkTelemetry(value);
  if (checked.ok) return { ok: true, value: checked.value };
  return { ok: false, dead: { reason: checked.reason, raw: keepRaw(raw ?? safeStringify(value)) } };
}

/** Why a line has no value: too long, or not JSON (see `parseLine`). */
class Unparsable {
  constructor(readonly dead: DeadLetter) {}
}

/**
 * The value in one NDJSON line, or an `Unparsable` saying why there is none; never throws.
 * Parsed once: `decodeParsed` takes it from there (`decodeTelemetry` first tries the fast check
 * on it, without a result object per line).
 */
export function parseLine(line: string): unknown {
  if (line.length > MAX_LINE_CHARS) {
    return new Unparsable({
      reason: `(message): line of ${line.length} chars exceeds ${MAX_LINE_CHARS}`,
      raw: keepRaw(line),
    });
  }
  try {
    return JSON.parse(line);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return new Unparsable({
      reason: `(message): not JSON: ${why} (got ${showValue(line)})`,
      raw: keepRaw(line),
    });
  }
}

/** Validates what `parseLine` gave for `line`. */
export function decodeParsed(value: unknown, line: string): Decoded {
  if (value instanceof Unparsable) return { ok: false, dead: value.dead };
  if (value !== null && typeof value === "object" && (value as { v?: unknown }).v !== 1) {
    const v = (value as { v?: unknown }).v;
    return {
      ok: false,
      dead: {
        reason: `v: unsupported contract version (got ${showValue(v)}); this reader takes 1`,
        raw: keepRaw(line),
      },
    };
  }
  return decodeValue(value, line);
}

/** Parses and validates one NDJSON line; never throws. */
export function decodeLine(line: string): Decoded {
  return decodeParsed(parseLine(line), line);
}

function keepRaw(raw: string): string {
  return raw.length > RAW_KEEP_CHARS ? `${raw.slice(0, RAW_KEEP_CHARS)}...(${raw.length} chars)` : raw;
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

export { describeViolations };
