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

  async sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.pending === done) this.pending = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.pending = done;
    });
  }
}
