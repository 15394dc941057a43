import { existsSync, readFileSync, statSync } from "node:fs";
import { DateTime } from "luxon";
import { z } from "zod";
import { checkOrThrow, ValidationError, type Violation } from "../schemas/common.ts";
import { KERNEL_COMPONENT } from "../schemas/telemetry.ts";
import {
  CanarySpec,
  ComponentSpec,
  ConfigChangeSpec,
  defaultCanary,
  ExplicitLeakSpec,
  HardwareSpec,
  isPreset,
  OsSpec,
  PRESETS,
  presetConfig,
  RegionSpec,
  type SimConfig,
  SimConfigSchema,
} from "./config.ts";
import { parseDuration } from "./duration.ts";

/**
 * Scenario resolution: a preset name or a JSON scenario file, then overrides (CLI flags).
 * A scenario file is an overlay on a preset (`base`, default "mixed"): objects are merged
 * key by key, arrays (components, regions, explicit leaks, ...) replace the preset's.
 */

/** Values that override the scenario (the CLI flags). */
export interface SimOverrides {
  hosts?: number;
  days?: number;
  /** Sampling interval as a duration ("5m") or milliseconds. */
  interval?: string | number;
  seed?: number;
  /** Start as an ISO-8601 time or epoch ms. */
  start?: string | number;
  /** Allowed lateness in intervals. */
  lateness?: number;
}

/** Thrown when a scenario is neither a preset nor an existing file (a usage error, not invalid input). */
export class ScenarioNotFoundError extends Error {
  override name = "ScenarioNotFoundError";
}

function partialOf<T extends z.ZodRawShape>(shape: T) {
  return z.strictObject(shape).partial();
}

const Interval = z.union([
  z.string().refine(
    (s) => {
      try {
        return parseDuration(s) >= 1000;
      } catch {
        return false;
      }
    },
    { message: 'expected a duration of at least 1s, e.g. "5m"' },
  ),
  z.number().int().min(1000),
]);

const StartTime = z.union([
  z.string().refine((s) => DateTime.fromISO(s, { zone: "utc" }).isValid, {
    message: 'expected an ISO-8601 time, e.g. "2026-01-05T00:00:00Z"',
  }),
  z.number().int().min(0),
]);

const shape = SimConfigSchema.shape;
const vmShape = shape.vms.shape;
const eventShape = shape.events.shape;
const leakShape = shape.leaks.shape;

/** The JSON scenario file format. Every key is optional; unknown keys are errors. */
export const ScenarioFile = z.strictObject({
  /** Ignored: lets editors find a JSON schema. */
  $schema: z.string().optional(),
  /** Free text. */
  description: z.string().optional(),
  /** The preset this file modifies (default "mixed"). */
  base: z.enum(PRESETS).optional(),
  name: z.string().min(1).max(256).optional(),
  seed: shape.seed.optional(),
  hosts: shape.hosts.optional(),
  days: shape.days.optional(),
  interval: Interval.optional(),
  start: StartTime.optional(),
  lateness: shape.lateness.optional(),
  regions: z.array(RegionSpec).min(1).max(100).optional(),
  clusterSize: shape.clusterSize.optional(),
  hardware: z.array(HardwareSpec).min(1).max(100).optional(),
  os: z.array(OsSpec).min(1).max(100).optional(),
  vms: partialOf(vmShape).optional(),
  components: z.array(ComponentSpec).min(1).max(1000).optional(),
  faults: partialOf({
    lost: z.number().min(0).max(1),
    duplicated: z.number().min(0).max(1),
    late: z.number().min(0).max(1),
    jitterMs: z.number().int().min(0).max(60_000),
  }).optional(),
  events: partialOf({
    deploysPerDay: eventShape.deploysPerDay,
    deployHours: eventShape.deployHours,
    crashesPerProcessPerDay: eventShape.crashesPerProcessPerDay,
    configChange: ConfigChangeSpec.nullable(),
    hostDeaths: partialOf(eventShape.hostDeaths.shape),
  }).optional(),
  leaks: partialOf({
    isolated: partialOf(leakShape.isolated.shape),
    kernel: partialOf(leakShape.kernel.shape),
    canary: partialOf(CanarySpec.shape).nullable(),
    explicit: z.array(ExplicitLeakSpec).max(100_000),
  }).optional(),
});
export type ScenarioFile = z.output<typeof ScenarioFile>;

/** Cross-field checks that a schema cannot express. */
export function semanticViolations(c: SimConfig): Violation[] {
  const out: Violation[] = [];
  const names = new Set<string>();
  c.components.forEach((comp, i) => {
    if (names.has(comp.name))
      out.push({ path: `components[${i}].name`, value: comp.name, message: "duplicate component" });
    names.add(comp.name);
  });
  const nonKernel = (name: string | undefined, path: string) => {
    if (name === undefined) return;
    if (name === KERNEL_COMPONENT) out.push({ path, value: name, message: "must not be the kernel" });
    else if (!names.has(name)) out.push({ path, value: name, message: "no such component in the catalog" });
  };
  nonKernel(c.events.configChange?.component, "events.configChange.component");
  const canary = c.leaks.canary;
  if (canary !== null) {
    nonKernel(canary.component, "leaks.canary.component");
    if (canary.component !== undefined && canary.process !== undefined) {
      const comp = c.components.find((x) => x.name === canary.component);
      if (comp !== undefined && !comp.processes.some((p) => p.name === canary.process)) {
        out.push({
          path: "leaks.canary.process",
          value: canary.process,
          message: `no such process in ${comp.name}`,
        });
      }
    }
  }
  c.leaks.explicit.forEach((l, i) => {
    if (!names.has(l.component)) {
      out.push({
        path: `leaks.explicit[${i}].component`,
        value: l.component,
        message: "no such component in the catalog",
      });
    }
  });
  if (c.leaks.kernel.count[1] > 0 && !names.has(KERNEL_COMPONENT)) {
    out.push({
      path: "leaks.kernel.count",
      value: c.leaks.kernel.count,
      message: "kernel leaks need a kernel component",
    });
  }
  if (c.faults.jitterMs * 4 > c.intervalMs) {
    out.push({
      path: "faults.jitterMs",
      value: c.faults.jitterMs,
      message: "must be at most a quarter of the interval",
    });
  }
  return out;
}

/** Validates a whole configuration; throws ValidationError naming each bad field and its value. */
export function validateConfig(config: unknown, what = "simulation config"): SimConfig {
  const value = checkOrThrow(SimConfigSchema, config, what);
  const semantic = semanticViolations(value);
  if (semantic.length > 0) throw new ValidationError(what, semantic);
  return value;
}

function parseStart(value: string | number): number {
  if (typeof value === "number") return value;
  const dt = DateTime.fromISO(value, { zone: "utc" });
  if (!dt.isValid) throw new RangeError(`invalid start time "${value}"`);
  return dt.toMillis();
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Applies a parsed scenario file onto a preset configuration. */
export function applyScenarioFile(file: ScenarioFile): SimConfig {
  const c = presetConfig(file.base ?? "mixed");
  if (file.name !== undefined) c.name = file.name;
  if (file.seed !== undefined) c.seed = file.seed;
  if (file.hosts !== undefined) c.hosts = file.hosts;
  if (file.days !== undefined) c.days = file.days;
  if (file.interval !== undefined)
    c.intervalMs = typeof file.interval === "number" ? file.interval : parseDuration(file.interval);
  if (file.start !== undefined) c.start = parseStart(file.start);
  if (file.lateness !== undefined) c.lateness = file.lateness;
  if (file.regions !== undefined) c.regions = file.regions;
  if (file.clusterSize !== undefined) c.clusterSize = file.clusterSize;
  if (file.hardware !== undefined) c.hardware = file.hardware;
  if (file.os !== undefined) c.os = file.os;
  if (file.vms !== undefined) c.vms = { ...c.vms, ...defined(file.vms) };
  if (file.components !== undefined) c.components = file.components;
  if (file.faults !== undefined) c.faults = { ...c.faults, ...defined(file.faults) };
  if (file.events !== undefined) {
    const { hostDeaths, ...rest } = file.events;
    c.events = { ...c.events, ...defined(rest) };
    if (hostDeaths !== undefined) c.events.hostDeaths = { ...c.events.hostDeaths, ...defined(hostDeaths) };
  }
  const l = file.leaks;
  if (l !== undefined) {
    if (l.isolated !== undefined) c.leaks.isolated = { ...c.leaks.isolated, ...defined(l.isolated) };
    if (l.kernel !== undefined) c.leaks.kernel = { ...c.leaks.kernel, ...defined(l.kernel) };
    if (l.canary === null) c.leaks.canary = null;
    else if (l.canary !== undefined)
      c.leaks.canary = { ...(c.leaks.canary ?? defaultCanary()), ...defined(l.canary) };
    if (l.explicit !== undefined) c.leaks.explicit = l.explicit;
  }
  return c;
}

/** Parses the JSON text of a scenario file; throws ValidationError (naming `source`) when invalid. */
export function parseScenarioText(text: string, source: string): SimConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ValidationError(`scenario file ${source}`, [
      { path: "(file)", value: text.slice(0, 60), message: `not valid JSON: ${(err as Error).message}` },
    ]);
  }
  const file = checkOrThrow(ScenarioFile, json, `scenario file ${source}`);
  return validateConfig(applyScenarioFile(file), `scenario file ${source}`);
}

/** Applies overrides (e.g. CLI flags) and validates the result. */
export function applyOverrides(config: SimConfig, overrides: SimOverrides = {}): SimConfig {
  const c: SimConfig = { ...config };
  if (overrides.hosts !== undefined) c.hosts = overrides.hosts;
  if (overrides.days !== undefined) c.days = overrides.days;
  if (overrides.interval !== undefined)
    c.intervalMs =
      typeof overrides.interval === "number" ? overrides.interval : parseDuration(overrides.interval);
  if (overrides.seed !== undefined) c.seed = overrides.seed;
  if (overrides.start !== undefined) c.start = parseStart(overrides.start);
  if (overrides.lateness !== undefined) c.lateness = overrides.lateness;
  return validateConfig(c);
}

/**
 * Resolves a preset name ("mixed", "regression", "quiet") or the path of a JSON scenario file
 * into a validated configuration, with `overrides` applied on top. Throws ScenarioNotFoundError
 * for an unknown name / missing file and ValidationError for an invalid file or override.
 */
export function resolveScenario(nameOrPath: string, overrides: SimOverrides = {}): SimConfig {
  let base: SimConfig;
  if (isPreset(nameOrPath)) {
    base = presetConfig(nameOrPath);
  } else if (existsSync(nameOrPath) && statSync(nameOrPath).isFile()) {
    base = parseScenarioText(readFileSync(nameOrPath, "utf8"), nameOrPath);
  } else {
    throw new ScenarioNotFoundError(
      `unknown scenario "${nameOrPath}": not a preset (${PRESETS.join(", ")}) and not an existing file`,
    );
  }
  return applyOverrides(base, overrides);
}
