import { z } from "zod";

/** Host and component ids are NATS subject tokens. */
export const SUBJECT_TOKEN = /^[A-Za-z0-9_-]{1,128}$/;

/** Integer epoch milliseconds, UTC. */
export const EpochMs = z.number().int().nonnegative();

/** Integer byte count. */
export const Bytes = z.number().int().nonnegative();

export const SubjectToken = z.string().regex(SUBJECT_TOKEN, "must match [A-Za-z0-9_-]{1,128}");

/** One problem found in a message: where, what value, and why. */
export interface Violation {
  path: string;
  value: unknown;
  message: string;
}

/** Result of validating one message: the typed value, or every violation found. */
export type Checked<T> = { ok: true; value: T } | { ok: false; violations: Violation[]; reason: string };

/** The value at `path` inside `input`, or undefined when the path does not exist. */
export function valueAt(input: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let cur: unknown = input;
  for (const key of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return cur;
}

/** A field's path (`processes[0].bytes`); `root` names the whole input (a message, a file). */
export function formatPath(path: ReadonlyArray<PropertyKey>, root = "(message)"): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out === "" ? root : out;
}

/** Short, single-line rendering of an offending value for error messages. */
export function showValue(value: unknown): string {
  if (value === undefined) return "missing";
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Runs a zod schema and turns its issues into violations that name the field and the value. */
export function check<T>(schema: z.ZodType<T>, input: unknown, root?: string): Checked<T> {
  return checked(schema, input, root, false);
}

/**
 * `check` for files a person writes (settings, scenarios): each unknown key is reported at its
 * own path with its value ("detect.sigmaz: unknown key (got 3)"), not as one message about the
 * object that holds them.
 */
export function strictCheck<T>(schema: z.ZodType<T>, input: unknown, root?: string): Checked<T> {
  return checked(schema, input, root, true);
}

function checked<T>(
  schema: z.ZodType<T>,
  input: unknown,
  root: string | undefined,
  perKey: boolean,
): Checked<T> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return { ok: true, value: parsed.data };
  const violations: Violation[] = [];
  for (const issue of parsed.error.issues) {
    const unknown = perKey && issue.code === "unrecognized_keys";
    const paths = unknown ? issue.keys.map((k) => [...issue.path, k]) : [issue.path];
    for (const path of paths)
      violations.push({
        path: formatPath(path, root),
        value: valueAt(input, path),
        message: unknown ? "unknown key" : issue.message,
      });
  }
  return { ok: false, violations, reason: describeViolations(violations) };
}

export function describeViolations(violations: readonly Violation[]): string {
  return violations.map((v) => `${v.path}: ${v.message} (got ${showValue(v.value)})`).join("; ");
}

/** Error thrown by parse helpers at boundaries where throwing is right (CLI input files). */
export class ValidationError extends Error {
  override name = "ValidationError";
  constructor(
    readonly what: string,
    readonly violations: Violation[],
  ) {
    super(`invalid ${what}: ${describeViolations(violations)}`);
  }
}

/** `strictCheck`, throwing a ValidationError that names `what`, every bad field and its value. */
export function checkOrThrow<T>(schema: z.ZodType<T>, input: unknown, what: string): T {
  const checked = strictCheck(schema, input, "(top level)");
  if (!checked.ok) throw new ValidationError(what, checked.violations);
  return checked.value;
}
