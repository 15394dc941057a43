import { readFile } from "node:fs/promises";
import { type Checked, showValue } from "../schemas/common.ts";
import { checkSuspect, type SuspectEvent } from "../schemas/suspect.ts";
import { checkTruth, type TruthRecord } from "../schemas/truth.ts";

/** A truth or suspect file with a line that is not valid; the CLI maps it to exit code 3. */
export class InputError extends Error {
  override name = "InputError";
  constructor(
    message: string,
    readonly file: string,
    readonly line: number,
  ) {
    super(message);
  }
}

async function readText(path: string): Promise<string> {
  if (path !== "-") return readFile(path, "utf8");
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * Parses NDJSON text strictly: every non-blank line must parse and validate; the first
 * bad line raises an InputError naming the line number, the field and the value.
 */
export function parseStrictNdjson<T>(
  text: string,
  file: string,
  what: string,
  validate: (input: unknown) => Checked<T>,
): T[] {
  const out: T[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "") continue;
    const lineNo = i + 1;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      throw new InputError(`${file}:${lineNo}: invalid ${what}: not JSON (${msg})`, file, lineNo);
    }
    const checked = validate(parsed);
    if (!checked.ok) {
      const v = checked.violations[0];
      const detail = v ? `field ${v.path}: ${v.message} (got ${showValue(v.value)})` : checked.reason;
      const more = checked.violations.length > 1 ? ` (+${checked.violations.length - 1} more)` : "";
      throw new InputError(`${file}:${lineNo}: invalid ${what}: ${detail}${more}`, file, lineNo);
    }
    out.push(checked.value);
  }
  return out;
}

export async function loadTruth(path: string): Promise<TruthRecord[]> {
  return parseStrictNdjson(await readText(path), path, "truth record", checkTruth);
}

export async function loadSuspects(path: string): Promise<SuspectEvent[]> {
  return parseStrictNdjson(await readText(path), path, "suspect event", checkSuspect);
}
