/**
 * Heap profiles in the Object Store bucket `resin_profiles`: agents put them (pprof, gzip, with
 * metadata headers), resin reads them back for the diagnosis and deletes those it no longer
 * needs. Objects outlive every process, so a trace, a reference or a ticket survives restarts
 * of both sides by naming its profiles.
 */
import { type ObjectStore, Objm } from "@nats-io/obj";
import { headers, type NatsConnection, nanos } from "@nats-io/transport-node";
import { fromPprof, toPprof } from "../heap/pprof.ts";
import type { HeapProfile } from "../heap/profile.ts";
import { PPROF_CONTENT_TYPE, PROFILE_BUCKET, PROFILE_HEADERS } from "./protocol.ts";

/** What is known about a stored profile without reading it. */
export interface StoredProfile {
  id: string;
  host: string;
  pid: number;
  process: string;
  component: string;
  trace: string;
  takenAt: number;
  /** Live bytes (sum over stacks). */
  bytes: number;
  stacks: number;
  /** Size of the pprof object. */
  size: number;
  os?: string;
}

export interface ProfileStoreOptions {
  /** Profiles older than this are removed by the server (the bucket's max age; only when resin creates it). */
  maxAgeMs: number;
}

export const DEFAULT_PROFILE_STORE_OPTIONS: ProfileStoreOptions = { maxAgeMs: 30 * 24 * 3_600_000 };

export class ProfileStore {
  private constructor(readonly objects: ObjectStore) {}

  /** Binds the bucket, creating it when missing. */
  static async open(
    nc: NatsConnection,
    options: Partial<ProfileStoreOptions> = {},
    bucket = PROFILE_BUCKET,
  ): Promise<ProfileStore> {
    const opts = { ...DEFAULT_PROFILE_STORE_OPTIONS, ...options };
    const objm = new Objm(nc);
    try {
      return new ProfileStore(await objm.create(bucket, { ttl: nanos(opts.maxAgeMs) }));
    } catch (err) {
      // Another client created it between our look and our add.
      if (!/already in use/i.test((err as Error).message)) throw err;
      return new ProfileStore(await objm.open(bucket));
    }
  }

  async put(
    id: string,
    profile: HeapProfile,
    meta: Omit<StoredProfile, "id" | "takenAt" | "bytes" | "stacks" | "size">,
  ): Promise<StoredProfile> {
    const data = toPprof(profile);
    const bytes = profile.stacks.reduce((a, s) => a + s.bytes, 0);
    const h = headers();
    h.set(PROFILE_HEADERS.host, meta.host);
    h.set(PROFILE_HEADERS.pid, String(meta.pid));
    h.set(PROFILE_HEADERS.process, meta.process);
    h.set(PROFILE_HEADERS.component, meta.component);
    h.set(PROFILE_HEADERS.trace, meta.trace);
    h.set(PROFILE_HEADERS.takenAt, String(profile.takenAt));
    h.set(PROFILE_HEADERS.bytes, String(bytes));
    if (meta.os !== undefined) h.set(PROFILE_HEADERS.os, meta.os);
    h.set(PROFILE_HEADERS.contentType, PPROF_CONTENT_TYPE);
    await this.objects.putBlob(
      {
        name: id,
        description: `heap profile of ${meta.process} (pid ${meta.pid}) on ${meta.host}`,
        headers: h,
      },
      data,
    );
    return {
      ...meta,
      id,
      takenAt: profile.takenAt,
      bytes,
      stacks: profile.stacks.length,
      size: data.length,
    };
  }

  /** The profile, or undefined when it is gone (deleted, or expired by the bucket's max age). */
  async get(id: string): Promise<HeapProfile | undefined> {
    const data = await this.objects.getBlob(id);
    return data === null ? undefined : fromPprof(data);
  }

  /** The stored metadata, or undefined when the object is gone. */
  async info(id: string): Promise<StoredProfile | undefined> {
    const info = await this.objects.info(id);
    if (info === null || info.deleted) return undefined;
    const h = info.headers;
    const num = (k: string) => Number(h?.get(k) ?? "0");
    const os = h?.get(PROFILE_HEADERS.os);
    return {
      id,
      host: h?.get(PROFILE_HEADERS.host) ?? "",
      pid: num(PROFILE_HEADERS.pid),
      process: h?.get(PROFILE_HEADERS.process) ?? "",
      component: h?.get(PROFILE_HEADERS.component) ?? "",
      trace: h?.get(PROFILE_HEADERS.trace) ?? "",
      takenAt: num(PROFILE_HEADERS.takenAt),
      bytes: num(PROFILE_HEADERS.bytes),
      stacks: 0,
      size: info.size,
      ...(os ? { os } : {}),
    };
  }

  /** Deletes; an object already gone is not an error. */
  async delete(id: string): Promise<void> {
    try {
      await this.objects.delete(id);
    } catch (err) {
      if (!/not found/i.test((err as Error).message)) throw err;
    }
  }

  /** Names of the stored (not deleted) objects. */
  async list(): Promise<string[]> {
    return (await this.objects.list()).filter((i) => !i.deleted).map((i) => i.name);
  }
}
