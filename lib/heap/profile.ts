/**
 * The in-memory heap profile every heap source converts to (pprof from Go or jemalloc, V8's
 * sampling heap profiler) and the diagnosis reads: live bytes and objects per allocation
 * stack at one moment. Deliberately smaller than pprof: the diagnosis compares stacks
 * across profiles and needs nothing else.
 */

/** One source location of a stack. `line` is 1-based; 0 means unknown. */
export interface Frame {
  fn: string;
  file: string;
  line: number;
}

/** Memory still live that was allocated by one call stack. */
export interface HeapStack {
  /** Leaf (the allocating function) first, then its callers. */
  frames: Frame[];
  /** Live (in-use) bytes. */
  bytes: number;
  /**
   * Live (in-use) objects, as the source counts them: from pprof, the producer's figure (Go's
   * is an estimate of all objects); from V8's sampling heap profiler, the number of sampled live
   * objects, not scaled (unlike `bytes`, V8's estimate of all). Compare it within one source only.
   */
  objects: number;
}

/** One heap profile of one process. */
export interface HeapProfile {
  /** When the profile was taken, epoch ms. */
  takenAt: number;
  stacks: HeapStack[];
}

/**
 * Stable key of a stack, used to match the same stack across profiles (and across processes
 * running the same code). Function, file and line of every frame, in order; columns and
 * addresses are not part of a Frame, so a stack keeps its key across restarts and ASLR.
 * JSON keeps it unambiguous whatever characters the names contain.
 */
export function stackKey(frames: Frame[]): string {
  return JSON.stringify(frames.map((f) => [f.fn, f.file, f.line]));
}
