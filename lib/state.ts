/**
 * Capturing and restoring the state of the pipeline's pure cores, for checkpoints.
 *
 * The cores keep their state in plain data (numbers, arrays, typed arrays, Maps, plain objects),
 * so a core's state is its own fields minus configuration and callbacks. Everything is captured
 * in one `v8.serialize` call, which keeps references shared between cores shared and is fast
 * for typed arrays; the result is gzipped.
 */
import { createHash } from "node:crypto";
import { deserialize, serialize } from "node:v8";
import { gunzipSync, gzipSync } from "node:zlib";

export type Fields = Record<string, unknown>;

/** The own fields of a core, minus `skip` (configuration, derived constants) and functions. */
export function fieldsOf(core: object, skip: readonly string[] = []): Fields {
  const out: Fields = {};
  for (const [key, value] of Object.entries(core))
    if (!skip.includes(key) && typeof value !== "function") out[key] = value;
  return out;
}

/** Puts captured fields back into a freshly constructed core of the same class and configuration. */
export function assignFields(core: object, fields: Fields, skip: readonly string[] = []): void {
  const target = core as Fields;
  for (const [key, value] of Object.entries(fields)) {
    if (skip.includes(key)) continue;
    if (!(key in target))
      throw new StateError(`checkpoint has a field "${key}" that ${core.constructor.name} does not have`);
    target[key] = value;
  }
}

export class StateError extends Error {
  override name = "StateError";
}

/** Layout version of captured state: bump when a core's fields change meaning. */
export const STATE_FORMAT = 10;

interface Envelope {
  format: number;
  fingerprint: string;
  node: string;
  state: unknown;
}

/** A short digest of the settings that shape the state: a checkpoint only restores under the same ones. */
export function fingerprintOf(settings: unknown): string {
  return createHash("sha256").update(JSON.stringify(settings)).digest("hex").slice(0, 16);
}

export function encodeState(state: unknown, fingerprint: string): Uint8Array {
  const envelope: Envelope = { format: STATE_FORMAT, fingerprint, node: process.versions.v8, state };
  return gzipSync(serialize(envelope), { level: 1 });
}

export function decodeState(bytes: Uint8Array, fingerprint: string): unknown {
  let envelope: Envelope;
  try {
    envelope = deserialize(gunzipSync(bytes)) as Envelope;
  } catch (err) {
    throw new StateError(`checkpoint is not readable state: ${(err as Error).message}`);
  }
  if (envelope.format !== STATE_FORMAT)
    throw new StateError(
      `checkpoint has state format ${envelope.format}, this resin reads format ${STATE_FORMAT}`,
    );
  if (envelope.fingerprint !== fingerprint)
    throw new StateError(
      `checkpoint was made with other detector settings (fingerprint ${envelope.fingerprint}, now ${fingerprint}); ` +
        "start with the same settings, or discard the state with --reset-state",
    );
  return envelope.state;
}
