/**
 * A loop's pause that new work can cut short: `sleep(ms)` resolves after `ms` or at the next
 * `wake()`, whichever comes first. A `wake()` while nobody sleeps is not kept: the loop checks its
 * work after every pause anyway.
 */
export class Waker {
  private pending: (() => void) | undefined;

  wake(): void {
    this.pending?.();
  }

  /** Resolves true when a `wake()` cut the pause short, false after the full `ms`. */
  async sleep(ms: number): Promise<boolean> {
    return await new Promise<boolean>((resolve) => {
      const done = (woken: boolean) => {
        clearTimeout(timer);
        if (this.pending === wake) this.pending = undefined;
        resolve(woken);
      };
      const wake = () => done(true);
      const timer = setTimeout(() => done(false), ms);
      this.pending = wake;
    });
  }
}
