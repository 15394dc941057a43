import { vi } from "vitest";
import { main } from "../../cli/main.ts";

/**
 * Runs `resin <args>` in this process with `env` added, and returns the exit code and stderr.
 * Only for what is refused before anything connects (settings checked at start-up).
 */
export async function resinInProcess(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; err: string }> {
  const err: string[] = [];
  const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
    err.push(String(chunk));
    return true;
  });
  const saved = { ...process.env };
  Object.assign(process.env, env);
  process.exitCode = undefined;
  try {
    await main(["node", "resin", ...args]);
  } finally {
    spy.mockRestore();
    process.env = saved;
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = undefined;
  return { code, err: err.join("") };
}
