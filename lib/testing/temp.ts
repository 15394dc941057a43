/**
 * Temp directories for tests that remove themselves. Made inside a test, a directory goes when
 * that test finishes; made while a file's tests are being collected (module scope or a describe
 * block), it goes after the tests of that block. Some eval fixtures write tens of MB, and a test
 * run must not leave them behind to fill /tmp.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, onTestFinished } from "vitest";

function remove(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** A new empty directory under the OS temp dir, named `resin-<prefix>-XXXXXX`. */
export function testTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `resin-${prefix}-`));
  try {
    onTestFinished(() => remove(dir));
  } catch {
    // Not inside a running test: the directory serves the rest of the block.
    afterAll(() => remove(dir));
  }
  return dir;
}
