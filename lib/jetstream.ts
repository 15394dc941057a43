/**
 * The JetStream streams resin reads and writes, and their subjects (CONTRACT §1, §2). Created
 * with limits when missing; an existing stream is left as its operator configured it.
 */
import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { errors, nanos } from "@nats-io/transport-node";

export const TELEMETRY_STREAM = "RESIN_TELEMETRY";
export const SUSPECT_STREAM = "RESIN_SUSPECTS";
export const DEADLETTER_STREAM = "RESIN_DEADLETTER";
export const DEADLETTER_SUBJECT = "resin.deadletter";

export function telemetrySubject(component: string, host: string): string {
  return `resin.telemetry.${component}.${host}`;
}

export function suspectSubject(component: string): string {
  return `resin.suspects.${component}`;
}

export interface StreamLimits {
  /** Telemetry older than this is removed (ms). */
  maxAgeMs: number;
  /** Telemetry bytes kept at most (the oldest go first). */
  maxBytes: number;
  /** Messages larger than this are refused by the server. */
  maxMsgBytes: number;
  /** Window in which a repeated message id (publisher retry, resin restart) is stored once (ms). */
  duplicateWindowMs: number;
}

/** A stream of records kept by age only (-1: no limit), a repeated id stored once within a day. */
export const RECORD_STREAM_LIMITS: StreamLimits = {
  maxAgeMs: 90 * 24 * 3_600_000,
  maxBytes: -1,
  maxMsgBytes: -1,
  duplicateWindowMs: 24 * 3_600_000,
};

export const DEFAULT_STREAM_LIMITS: StreamLimits = {
  maxAgeMs: 7 * 24 * 3_600_000,
  maxBytes: 10 * 1024 ** 3,
  maxMsgBytes: 1024 * 1024,
  duplicateWindowMs: 2 * 3_600_000,
};

/**
 * Creates a stream with limits when no stream of that name exists (another instance may create it
 * at the same time; an existing stream is left as its operator configured it).
 */
export async function ensureStream(
  jsm: JetStreamManager,
  name: string,
  subjects: string[],
  limits: StreamLimits,
  maxAgeMs: number,
): Promise<void> {
  try {
    await jsm.streams.info(name);
    return;
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.StreamNotFound) throw err;
  }
  try {
    await jsm.streams.add({
      name,
      subjects,
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_age: nanos(maxAgeMs),
      max_bytes: limits.maxBytes,
      max_msg_size: limits.maxMsgBytes,
      duplicate_window: nanos(Math.min(limits.duplicateWindowMs, maxAgeMs)),
    });
  } catch (err) {
    // Another instance created it first.
    if (!(err instanceof JetStreamApiError) || !/already in use/i.test(err.message)) throw err;
  }
}

/** Creates the telemetry, suspect and dead-letter streams when they do not exist. */
export async function ensureStreams(
  jsm: JetStreamManager,
  limits: StreamLimits = DEFAULT_STREAM_LIMITS,
): Promise<void> {
  await ensureStream(jsm, TELEMETRY_STREAM, ["resin.telemetry.>"], limits, limits.maxAgeMs);
  // Suspects and dead letters are small and worth keeping longer than raw telemetry.
  await ensureStream(
    jsm,
    SUSPECT_STREAM,
    ["resin.suspects.>"],
    limits,
    Math.max(limits.maxAgeMs, 90 * 24 * 3_600_000),
  );
  await ensureStream(
    jsm,
    DEADLETTER_STREAM,
    [DEADLETTER_SUBJECT],
    limits,
    Math.max(limits.maxAgeMs, 30 * 24 * 3_600_000),
  );
}

/** The routing key of a telemetry message. */
export interface TelemetryKey {
  host: string;
  component: string;
  ts: number;
}

/** The JetStream message id of a telemetry message: one sample of one (host, component). */
export function telemetryMsgId(key: TelemetryKey): string {
  return `${key.host}/${key.component}/${key.ts}`;
}

/**
 * Decides, in one place, which publish errors are worth retrying: anything that can heal when
 * the server or the connection comes back (timeouts, no responders, disconnects, JetStream
 * temporarily unavailable). A closed connection, a bad subject, a permission violation or a
 * message the stream refuses (JetStream API error other than 503) will not heal.
 */
export function isRetryablePublishError(err: unknown): boolean {
  if (err instanceof errors.ClosedConnectionError) return false;
  if (err instanceof errors.DrainingConnectionError) return false;
  if (err instanceof errors.InvalidSubjectError) return false;
  if (err instanceof errors.PermissionViolationError) return false;
  if (err instanceof errors.AuthorizationError) return false;
  if (err instanceof JetStreamApiError) return err.status === 503;
  return true;
}
