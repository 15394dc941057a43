/**
 * Heap profiles in pprof's profile.proto, the open format DESIGN.md settles on: Go's
 * /debug/pprof/heap, jemalloc and Node's pprof tooling all produce it, and `go tool pprof`
 * reads what we write. Only live memory matters to the diagnosis, so we read and write the
 * in-use sample types and nothing else.
 */
import { gunzipSync, gzipSync } from "node:zlib";
import { Location, Function as PprofFunction, Profile, StringTable, ValueType } from "pprof-format";
import { type Frame, type HeapProfile, type HeapStack, stackKey } from "./profile.ts";

/** Sample type names of live bytes: Go and jemalloc say `inuse_space`, Node's pprof tooling `space`. */
const SPACE_TYPES = ["inuse_space", "space"];
/** Sample type names of live objects, likewise. */
const OBJECT_TYPES = ["inuse_objects", "objects"];

/** Largest pprof we decompress: a heap profile is a few MiB at most; more is a gzip bomb or not ours. */
export const MAX_PPROF_BYTES = 256 * 2 ** 20;

/** A pprof profile we cannot turn into a HeapProfile: not pprof at all, or not a live-heap profile. */
export class PprofError extends Error {
  override name = "PprofError";
}

/**
 * Encode as pprof with sample types inuse_objects/count and inuse_space/bytes (the in-use half
 * of Go's heap profile, same names and order), gzip-compressed as Go serves it.
 * inuse_objects is `HeapStack.objects` as is: from V8's sampling heap profiler that is the
 * count of sampled live objects, not an estimate of all of them (inuse_space is an estimate).
 * period_type space/bytes and period are the sampling interval when `samplingIntervalBytes` is
 * given (as Go writes them), and absent otherwise.
 */
export function toPprof(
  profile: HeapProfile,
  { samplingIntervalBytes }: { samplingIntervalBytes?: number } = {},
): Uint8Array {
  if (
    samplingIntervalBytes !== undefined &&
    !(samplingIntervalBytes > 0 && Number.isFinite(samplingIntervalBytes))
  ) {
    throw new RangeError(`samplingIntervalBytes must be positive, got ${samplingIntervalBytes}`);
  }
  const strings = new StringTable();
  const functions: PprofFunction[] = [];
  const functionIds = new Map<string, number>();
  const locations: Location[] = [];
  const locationIds = new Map<string, number>();

  // One function per (name, file) and one location per frame, shared by every sample using it.
  const locationOf = (frame: Frame): number => {
    const locKey = stackKey([frame]);
    let locId = locationIds.get(locKey);
    if (locId !== undefined) return locId;
    const fnKey = JSON.stringify([frame.fn, frame.file]);
    let fnId = functionIds.get(fnKey);
    if (fnId === undefined) {
      fnId = functions.length + 1;
      functionIds.set(fnKey, fnId);
      const name = strings.dedup(frame.fn);
      functions.push(
        new PprofFunction({ id: fnId, name, systemName: name, filename: strings.dedup(frame.file) }),
      );
    }
    locId = locations.length + 1;
    locationIds.set(locKey, locId);
    locations.push(new Location({ id: locId, line: [{ functionId: fnId, line: frame.line }] }));
    return locId;
  };

  const encoded = new Profile({
    sampleType: [
      new ValueType({ type: strings.dedup("inuse_objects"), unit: strings.dedup("count") }),
      new ValueType({ type: strings.dedup("inuse_space"), unit: strings.dedup("bytes") }),
    ],
    ...(samplingIntervalBytes === undefined
      ? {}
      : {
          periodType: new ValueType({ type: strings.dedup("space"), unit: strings.dedup("bytes") }),
          period: Math.round(samplingIntervalBytes),
        }),
    sample: profile.stacks.map((s) => ({
      locationId: s.frames.map(locationOf),
      value: [Math.round(s.objects), Math.round(s.bytes)],
    })),
    location: locations,
    function: functions,
    stringTable: strings,
    // Nanoseconds since the epoch overflow a double's exact range, so go through BigInt.
    timeNanos: BigInt(Math.round(profile.takenAt * 1000)) * 1000n,
  });
  return gzipSync(encoded.encode());
}

/**
 * Decode a pprof heap profile, gzip-compressed or raw. Reads the in-use bytes (`inuse_space`,
 * or `space`) and objects (`inuse_objects`, or `objects`; 0 if absent) by name, whatever other
 * sample types the profile carries (Go adds alloc_objects and alloc_space). Inlined frames
 * become frames of their own, innermost first; a location without symbols becomes a frame
 * named by its address. Samples with the same stack (Go splits them by size bucket) merge.
 * `takenAt` is the profile's time_nanos in ms, 0 when the producer did not set it.
 * Refuses gzip that decompresses to more than `maxBytes` (default MAX_PPROF_BYTES).
 */
export function fromPprof(
  bytes: Uint8Array,
  { maxBytes = MAX_PPROF_BYTES }: { maxBytes?: number } = {},
): HeapProfile {
  let raw = bytes;
  if (isGzip(bytes)) {
    try {
      raw = gunzipSync(bytes, { maxOutputLength: maxBytes });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") {
        throw new PprofError(`gzip-compressed pprof decompresses to more than ${maxBytes} bytes: refused`, {
          cause: err,
        });
      }
      throw new PprofError(`gzip-compressed pprof that does not decompress (${(err as Error).message})`, {
        cause: err,
      });
    }
  }
  let decoded: Profile;
  try {
    decoded = Profile.decode(raw);
  } catch (err) {
    throw new PprofError(`not a pprof profile (${(err as Error).message})`, { cause: err });
  }
  const str = (i: number | bigint): string => decoded.stringTable.strings[Number(i)] ?? "";
  const types = decoded.sampleType.map((t) => ({ type: str(t.type), unit: str(t.unit) }));
  const spaceIndex = findType(types, SPACE_TYPES);
  if (spaceIndex < 0) {
    const have = types.length > 0 ? types.map((t) => `${t.type}/${t.unit}`).join(", ") : "none";
    throw new PprofError(
      `pprof profile has no in-use bytes (sample type inuse_space or space); it has: ${have}. ` +
        "A live-heap profile is needed (Go /debug/pprof/heap, jemalloc, V8 sampling heap profiler)",
    );
  }
  const objectsIndex = findType(types, OBJECT_TYPES);

  const functions = new Map(decoded.function.map((f) => [Number(f.id), f]));
  const locationFrames = new Map<number, Frame[]>();
  for (const loc of decoded.location) {
    const frames = loc.line.map((line): Frame => {
      const fn = functions.get(Number(line.functionId));
      return {
        fn: fn ? str(fn.name) || str(fn.systemName) : "",
        file: fn ? str(fn.filename) : "",
        line: Number(line.line),
      };
    });
    if (frames.length === 0) frames.push({ fn: `0x${BigInt(loc.address).toString(16)}`, file: "", line: 0 });
    locationFrames.set(Number(loc.id), frames);
  }

  const stacks = new Map<string, HeapStack>();
  for (const sample of decoded.sample) {
    const frames = sample.locationId.flatMap((id) => {
      const found = locationFrames.get(Number(id));
      if (!found) throw new PprofError(`pprof sample refers to location ${id}, which the profile lacks`);
      return found;
    });
    const bytes = Number(sample.value[spaceIndex] ?? 0);
    const objects = objectsIndex < 0 ? 0 : Number(sample.value[objectsIndex] ?? 0);
    const key = stackKey(frames);
    const seen = stacks.get(key);
    if (seen) {
      seen.bytes += bytes;
      seen.objects += objects;
    } else {
      stacks.set(key, { frames, bytes, objects });
    }
  }
  return { takenAt: Number(BigInt(decoded.timeNanos) / 1000n) / 1000, stacks: [...stacks.values()] };
}

function isGzip(bytes: Uint8Array): boolean {
  return bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Index of the first sample type named by one of `names` (in order of preference), or -1. */
function findType(types: { type: string }[], names: string[]): number {
  for (const name of names) {
    const i = types.findIndex((t) => t.type === name);
    if (i >= 0) return i;
  }
  return -1;
}
