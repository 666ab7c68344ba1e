/**
 * The single-writer discipline of one database.
 *
 * - `exclusive` runs tasks one after another, in call order: writes, snapshots and close never
 *   overlap, so journal records are appended in the order their transactions committed.
 * - `transaction` marks the window in which a write's changes are in memory but not yet durable
 *   (between BEGIN and COMMIT, across the journal fsync). Reads wait for it with `readable`, so a
 *   read never returns a write that could still be rolled back because its fsync failed.
 *
 * Reads otherwise run at once against the in-memory database; they do not queue behind writes.
 */
export class WriteGate {
  private tail: Promise<unknown> = Promise.resolve();
  private pending: Promise<void> | null = null;

  exclusive<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.catch(() => {});
    return result;
  }

  async transaction<T>(work: () => Promise<T>): Promise<T> {
    let finish = () => {};
    this.pending = new Promise<void>((resolve) => {
      finish = resolve;
    });
    try {
      return await work();
    } finally {
      this.pending = null;
      // Readers woken here run before the next queued write can open a new transaction.
      finish();
    }
  }

  /** Resolves when no write transaction is open; the caller must then read without awaiting. */
  async readable(): Promise<void> {
    while (this.pending) await this.pending;
  }
}
