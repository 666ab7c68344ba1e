import type { CallOptions } from "./deadline.js";
import type { NewRow, Row, RowPatch, TableName } from "./tables/index.js";

/** A value a filter compares a column with. Timestamps are ISO-8601 strings, dates `YYYY-MM-DD`. */
export type FilterScalar = string | number | boolean;

/**
 * A condition on one column. A bare value means equality; `null` means IS NULL.
 * Every operator in one object must hold (AND).
 */
export type ColumnFilter<V> =
  | V
  | {
      eq?: NonNullable<V>;
      neq?: NonNullable<V>;
      in?: readonly NonNullable<V>[];
      gt?: NonNullable<V>;
      gte?: NonNullable<V>;
      lt?: NonNullable<V>;
      lte?: NonNullable<V>;
      isNull?: boolean;
    };

export type Where<R> = { [K in keyof R]?: ColumnFilter<R[K]> };

export interface OrderBy<R> {
  column: keyof R & string;
  direction?: "asc" | "desc";
  /** Default as in PostgreSQL: nulls last when ascending, first when descending. */
  nulls?: "first" | "last";
}

export interface ListQuery<R> {
  where?: Where<R>;
  /** Applied in order; `id` ascending is always appended so pages are stable. */
  orderBy?: readonly OrderBy<R>[];
  /** At most this many rows. Default: all matching rows. */
  limit?: number;
  offset?: number;
}

export interface WriteOptions extends CallOptions {
  /** Optimistic check: the row's current `version` must equal this, else the call fails with `conflict`. */
  expectedVersion?: string;
}

/**
 * Access to one table of one source. Every method is a single atomic
 * operation: it either happens entirely or not at all. Rows are validated
 * against the table's zod schema before anything is sent; an invalid row
 * rejects with `invalid_input` naming each offending field.
 *
 * Text compares by code point (C collation) in every source. Errors are
 * always `CvError`; `unavailable`/`timeout` mean the source did not answer
 * and the outcome of a write is unknown.
 */
export interface Repository<T extends TableName> {
  readonly table: T;
  /** The row with this id, or `null` when there is none (absence is not an error). */
  get(id: string, options?: CallOptions): Promise<Row<T> | null>;
  /** Matching rows, ordered as asked and then by `id`. An empty result is `[]`. */
  list(query?: ListQuery<Row<T>>, options?: CallOptions): Promise<Row<T>[]>;
  /** Creates the row. An existing id or a unique/foreign-key violation rejects with `constraint`. */
  insert(row: NewRow<T>, options?: CallOptions): Promise<Row<T>>;
  /**
   * Creates the row, or overwrites the given columns of the row with the same
   * id. Replaying the same call leaves the same data: safe to retry on another tier.
   */
  upsert(row: NewRow<T>, options?: WriteOptions): Promise<Row<T>>;
  /** `upsert` for many rows in one transaction: all are written or none. */
  upsertMany(rows: readonly NewRow<T>[], options?: CallOptions): Promise<Row<T>[]>;
  /** Changes the given columns. A missing row rejects with `not_found`, a stale `expectedVersion` with `conflict`. */
  update(id: string, patch: RowPatch<T>, options?: WriteOptions): Promise<Row<T>>;
  /**
   * Deletes the row; resolves `true` if it existed, `false` if it did not
   * (so a retried delete is not an error). Rows still referenced by a
   * restricting foreign key reject with `constraint`.
   */
  delete(id: string, options?: WriteOptions): Promise<boolean>;
}
