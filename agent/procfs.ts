/**
 * Reading /proc: the only I/O of the sampler, behind a small interface so tests give it a
 * fixture tree. The real reader reads synchronously into one reused buffer: /proc files are
 * generated in memory by the kernel (no disk wait), a pass over ~1000 small files takes a few
 * milliseconds, and the thread pool's per-call cost would exceed the read itself.
 */
import { closeSync, openSync, readdirSync, readSync } from "node:fs";

export interface ProcFs {
  /** The file's text, or undefined when it cannot be read (process gone, not permitted). */
  read(path: string): string | undefined;
  /** Numeric entries of the /proc directory. */
  pids(): number[];
}

const CHUNK = 64 * 1024;

export class RealProcFs implements ProcFs {
  private buffer = Buffer.allocUnsafe(CHUNK);

  constructor(private readonly root = "/proc") {}

  read(path: string): string | undefined {
    const full = path.startsWith("/") ? path : `${this.root}/${path}`;
    let fd: number;
    try {
      fd = openSync(full, "r");
    } catch {
      return undefined;
    }
    try {
      let length = 0;
      for (;;) {
        if (length === this.buffer.length) {
          // slabinfo and big cmdlines outgrow the first chunk; keep the larger buffer for next time
          const bigger = Buffer.allocUnsafe(this.buffer.length * 2);
          this.buffer.copy(bigger, 0, 0, length);
          this.buffer = bigger;
        }
        const n = readSync(fd, this.buffer, length, this.buffer.length - length, null);
        if (n === 0) break;
        length += n;
      }
      return this.buffer.toString("utf8", 0, length);
    } catch {
      // ESRCH and the like: the process exited between open and read
      return undefined;
    } finally {
      closeSync(fd);
    }
  }

  pids(): number[] {
    const out: number[] = [];
    for (const name of readdirSync(this.root)) {
      const c = name.charCodeAt(0);
      if (c >= 48 && c <= 57) out.push(Number(name));
    }
    return out;
  }
}

/** A fixture /proc for tests: paths relative to /proc (`"42/stat"`, `"meminfo"`) → text. */
export class FixtureProcFs implements ProcFs {
  constructor(readonly files: Map<string, string>) {}
  read(path: string): string | undefined {
    return this.files.get(path);
  }
  pids(): number[] {
    const pids = new Set<number>();
    for (const p of this.files.keys()) {
      const m = /^(\d+)\//.exec(p);
      if (m !== null) pids.add(Number(m[1]));
    }
    return [...pids].sort((a, b) => a - b);
  }
}
