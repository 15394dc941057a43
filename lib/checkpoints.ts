/**
 * Where `resin run` keeps its checkpoints: a NATS KV bucket holds, per partition, a small record
 * (stream sequence, object name, size); the state itself, often larger than a NATS message, goes
 * to an Object Store bucket under a name that includes the sequence. The record is written after
 * the object, and the previous object is deleted only then, so a crash at any point leaves a
 * complete checkpoint behind.
 */
import { type KV, Kvm } from "@nats-io/kv";
import { type ObjectStore, Objm } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";

export const CHECKPOINT_BUCKET = "resin_checkpoints";
export const STATE_BUCKET = "resin_state";

export interface CheckpointRecord {
  /** Stream sequence of the last telemetry message whose effects are in the state. */
  seq: number;
  object: string;
  bytes: number;
  /** Wall-clock time of the save (for operators; not used by the pipeline). */
  savedAt: string;
  instance: string;
}

export interface Checkpoint extends CheckpointRecord {
  state: Uint8Array;
}

export class CheckpointStore {
  private constructor(
    private readonly kv: KV,
    private readonly objects: ObjectStore,
  ) {}

  static async open(nc: NatsConnection): Promise<CheckpointStore> {
    const kv = await new Kvm(nc).create(CHECKPOINT_BUCKET, { history: 5 });
    const objects = await new Objm(nc).create(STATE_BUCKET);
    return new CheckpointStore(kv, objects);
  }

  async record(key: string): Promise<CheckpointRecord | undefined> {
    const entry = await this.kv.get(key);
    if (entry === null || entry.operation !== "PUT" || entry.length === 0) return undefined;
    return entry.json<CheckpointRecord>();
  }

  async load(key: string): Promise<Checkpoint | undefined> {
    const record = await this.record(key);
    if (record === undefined) return undefined;
    const state = await this.objects.getBlob(record.object);
    if (state === null)
      throw new Error(
        `checkpoint ${key} points at state object ${record.object}, which is missing from ${STATE_BUCKET}`,
      );
    return { ...record, state };
  }

  async save(key: string, seq: number, state: Uint8Array, instance: string): Promise<CheckpointRecord> {
    const previous = await this.record(key);
    const object = `${key}.${seq}`;
    await this.objects.putBlob({ name: object }, state);
    const record: CheckpointRecord = {
      seq,
      object,
      bytes: state.length,
      savedAt: new Date().toISOString(),
      instance,
    };
    await this.kv.put(key, JSON.stringify(record));
    if (previous !== undefined && previous.object !== object) {
      try {
        await this.objects.delete(previous.object);
      } catch {
        // Already gone: nothing to clean.
      }
    }
    return record;
  }

  /** Forgets a partition's checkpoint (`--reset-state`). */
  async reset(key: string): Promise<void> {
    const previous = await this.record(key);
    await this.kv.delete(key);
    if (previous !== undefined) await this.objects.delete(previous.object).catch(() => undefined);
  }
}
