/**
 * The size of the next page of one kind (log entries, or snapshot rows) in one direction, learnt
 * from how long pages take. A page's pull and its apply are one statement each, and a hosted
 * Supabase cancels API statements after 8 s (statement_timeout; 57014): a page slower than the
 * budget halves the next one, a cancelled page is retried at once at half the size, and pages
 * double again, up to the configured size, while full pages take under a quarter of the budget.
 * Nothing is lost by a cancelled page: its transaction rolled back, and the cursor did not move.
 */
export class PageSizer {
  #size: number;

  constructor(
    private readonly max: number,
    /** A page call slower than this halves the next page. */
    readonly budgetMs: number,
  ) {
    this.#size = max;
  }

  get size(): number {
    return this.#size;
  }

  /** A page call took `ms`; `full` when the page held as many items as were asked for. */
  record(ms: number, full: boolean): void {
    if (ms > this.budgetMs) this.#size = Math.max(1, Math.floor(this.#size / 2));
    else if (full && ms < this.budgetMs / 4) this.#size = Math.min(this.max, this.#size * 2);
  }

  /** After a cancelled page: the smaller size to retry with, or undefined when one item was already too slow. */
  shrink(): number | undefined {
    if (this.#size === 1) return undefined;
    this.#size = Math.max(1, Math.floor(this.#size / 2));
    return this.#size;
  }
}
