/**
 * The diagnosis of one leak, as the snapshot sink emits it and the ticket sink (and any outside
 * consumer) reads it: the suspect, how it was traced, the ranked allocation stacks with their
 * growth, the references used. Version 1; grows only by optional fields.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import type { HeapProfile } from "../../lib/heap/profile.ts";
import { stackKey } from "../../lib/heap/profile.ts";
import { EpochMs, SubjectToken } from "../../schemas/common.ts";
import { GrowthPattern } from "../../schemas/suspect.ts";
import type { Candidate, TraceState } from "./core.ts";
import type { Diagnosis } from "./diagnose.ts";
import type { ChosenReferences, ProfileRef } from "./references.ts";

export const FrameSchema = z.looseObject({ fn: z.string(), file: z.string(), line: z.number().int() });

export const ReportCulprit = z.looseObject({
  rank: z.number().int().min(1),
  /** Leaf (allocating function) first. */
  frames: z.array(FrameSchema),
  growthBytes: z.number(),
  growthShare: z.number(),
  growingIntervals: z.number().int(),
  intervals: z.number().int(),
  score: z.number(),
  reason: z.string(),
  /** The stack's live bytes in each profile of `profiles`, in order. */
  bytes: z.array(z.number()),
});
export type ReportCulprit = z.infer<typeof ReportCulprit>;

export const ReportProfile = z.looseObject({ id: z.string(), takenAt: EpochMs, bytes: z.number() });

export const ReportCandidate = z.looseObject({
  host: SubjectToken,
  pid: z.number().int().nonnegative(),
  severity: z.number(),
  clarity: z.number().optional(),
  vms: z.number().optional(),
  /** "diagnosed", "traced", "failed: …", "stopped: …", "not traced". */
  outcome: z.string(),
});

export const DiagnosisReport = z.looseObject({
  v: z.literal(1),
  /** Stable id of the ticket: the same diagnosis always gets the same id. */
  id: z.string().regex(/^[A-Za-z0-9_.-]{1,200}$/),
  caseId: z.string(),
  suspectId: z.string(),
  component: SubjectToken,
  host: SubjectToken,
  process: z.string(),
  pid: z.number().int().nonnegative(),
  cluster: z.string().optional(),
  version: z.string().optional(),
  os: z.string().optional(),
  pattern: GrowthPattern,
  severity: z.number(),
  growthBytesPerHour: z.number(),
  /** The suspicious interval found by the detector. */
  interval: z.looseObject({ start: EpochMs, end: EpochMs }),
  detectedAt: EpochMs,
  /** Sink clock at the diagnosis. */
  diagnosedAt: EpochMs,
  /** Why tracing stopped (the completion rule that held, or the time limit). */
  completion: z.string(),
  method: z.enum(["series", "last-two"]),
  windowMs: z.number(),
  dropped: z.looseObject({ tooLarge: z.number().int(), onReferences: z.number().int() }),
  culprits: z.array(ReportCulprit),
  profiles: z.array(ReportProfile),
  references: z.array(
    z.looseObject({
      host: z.string(),
      /** "cluster": the suspect's cluster; "elsewhere": another (see the fingerprint for the version). */
      match: z.enum(["cluster", "elsewhere"]),
      fingerprint: z.looseObject({
        component: z.string(),
        cluster: z.string(),
        os: z.string(),
        version: z.string(),
        date: z.string(),
      }),
      profiles: z.array(z.string()),
    }),
  ),
  /** The process's memory (hourly aggregates resin saw while the suspect was open), when known. */
  series: z.looseObject({ ts: z.array(EpochMs), bytes: z.array(z.number()) }).optional(),
  candidates: z.array(ReportCandidate),
});
export type DiagnosisReport = z.infer<typeof DiagnosisReport>;

/** The report's id: readable, and the same for the same suspect and trace. */
export function reportId(component: string, host: string, pid: number, trace: string): string {
  const digest = createHash("sha1")
    .update(`${component}\n${host}\n${pid}\n${trace}`)
    .digest("hex")
    .slice(0, 10);
  return `${component}.${host}.${pid}.${digest}`;
}

/** What the report is made of (the shell gathers it; `buildReport` is pure). */
export interface ReportInput {
  caseId: string;
  trace: TraceState;
  candidate: Candidate;
  /** Every candidate of the component, with the traces of the case (for their outcomes). */
  candidates: Candidate[];
  traces: TraceState[];
  diagnosis: Diagnosis;
  /** The profiles diagnosed, oldest first, with their ids. */
  profiles: { ref: ProfileRef; profile: HeapProfile }[];
  references: ChosenReferences | undefined;
  diagnosedAt: number;
}

export function buildReport(input: ReportInput): DiagnosisReport {
  const { trace: t, candidate: c, diagnosis: d } = input;
  const culprits = d.culprits.map((culprit, i) => {
    const key = stackKey(culprit.frames);
    return {
      rank: i + 1,
      frames: culprit.frames.map((f) => ({ fn: f.fn, file: f.file, line: f.line })),
      growthBytes: culprit.growthBytes,
      growthShare: culprit.growthShare,
      growingIntervals: culprit.growingIntervals,
      intervals: culprit.intervals,
      score: culprit.score,
      reason: culprit.reason,
      bytes: input.profiles.map((p) =>
        p.profile.stacks.filter((s) => stackKey(s.frames) === key).reduce((a, s) => a + s.bytes, 0),
      ),
    };
  });
  const traceOf = new Map(
    input.traces.filter((x) => x.suspectId !== undefined).map((x) => [x.suspectId!, x]),
  );
  const outcome = (x: TraceState | undefined): string => {
    if (x === undefined) return "not traced";
    if (x.trace === t.trace) return "diagnosed";
    if (x.status === "starting" || x.status === "tracing") return "traced";
    return x.outcome ?? x.status;
  };
  const listed = new Map<string, ReportInput["candidates"][number]>();
  for (const x of input.candidates) listed.set(x.suspectId, x);
  for (const x of input.traces)
    if (x.suspectId !== undefined && !listed.has(x.suspectId) && x.suspect !== undefined)
      listed.set(x.suspectId, { ...x.suspect, series: { ts: [], bytes: [] } });
  const candidates = [...listed.values()]
    .sort((a, b) => b.severity - a.severity || (a.host < b.host ? -1 : 1))
    .map((x) => ({
      host: x.host,
      pid: x.pid,
      severity: x.severity,
      ...(x.clarity !== undefined ? { clarity: x.clarity } : {}),
      ...(x.vms !== undefined ? { vms: x.vms } : {}),
      outcome: outcome(traceOf.get(x.suspectId)),
    }));
  return {
    v: 1,
    id: reportId(t.component, t.host, t.pid, t.trace),
    caseId: input.caseId,
    suspectId: c.suspectId,
    component: t.component,
    host: t.host,
    process: t.process,
    pid: t.pid,
    ...(t.cluster !== "" ? { cluster: t.cluster } : {}),
    ...(t.version !== "" ? { version: t.version } : {}),
    ...(t.os !== undefined && t.os !== "" ? { os: t.os } : {}),
    pattern: c.pattern,
    severity: c.severity,
    growthBytesPerHour: c.growthBytesPerHour,
    interval: { start: c.start, end: c.end },
    detectedAt: c.detectedAt,
    diagnosedAt: input.diagnosedAt,
    completion: t.outcome ?? "complete",
    method: d.method,
    windowMs: d.windowMs,
    dropped: { ...d.dropped },
    culprits,
    profiles: input.profiles.map((p) => ({ ...p.ref })),
    references: (input.references?.records ?? []).map((r) => ({
      host: r.host,
      match: r.fingerprint.cluster === t.cluster ? ("cluster" as const) : ("elsewhere" as const),
      fingerprint: { ...r.fingerprint },
      profiles: r.profiles.map((p) => p.id),
    })),
    ...(c.series.ts.length > 0 ? { series: { ts: [...c.series.ts], bytes: [...c.series.bytes] } } : {}),
    candidates,
  };
}
