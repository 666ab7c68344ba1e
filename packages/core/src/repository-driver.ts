import type { CallOptions } from "./deadline.js";
import { CvError } from "./errors.js";
import type { ListQuery, Repository } from "./repository.js";
import { type Row, type TableName, tables } from "./tables/index.js";
import { parseId, parseListQuery, parseNewRow, parseRowPatch } from "./validate.js";

/** A row as a driver reads and writes it: validated input in, the table's stored row out. */
export type DriverRow = Record<string, unknown>;

/** Why an update or delete matched no row: there is none, or it is at another version. */
export type Miss = "missing" | "stale";

/** One call of a repository, as a driver runs it. */
export interface DriverCall {
  /** `<table>.<method>`, e.g. `patients.update`: names the call in its errors. */
  readonly action: string;
  readonly table: TableName;
  /** `write` may change rows (a driver may serialise or journal those). */
  readonly mode: "read" | "write";
  readonly options: CallOptions | undefined;
}

/**
 * What one database really differs in: how a call runs (deadline, closed source, translating what
 * the database threw into `CvError`) and the primitive operations on one table. Core builds the
 * `Repository` from it ({@link createRepository}): input parsing, omitted-column handling, the
 * table guard, what a miss means for each method, and the messages. Every source is a driver:
 * memory, Supabase, PostgreSQL, SQLite.
 *
 * Inputs reach the primitives parsed (zod) with `undefined` columns left out; outputs are the
 * table's stored rows. `C` is the driver's own handle for one call (a connection, a write session).
 * A primitive may answer synchronously: SQLite writes inside one synchronous transaction.
 */
export interface RepositoryDriver<C> {
  /** The package whose words errors carry: `adapter-postgres` gives `[adapter-postgres] …`. */
  readonly name: string;
  run<R>(call: DriverCall, work: (cx: C) => R | Promise<R>): Promise<R>;
  get(cx: C, table: TableName, id: string): DriverRow | null | Promise<DriverRow | null>;
  /** Rows matching `query`, ordered as asked then by `id`. */
  list(cx: C, table: TableName, query: ListQuery<DriverRow>): DriverRow[] | Promise<DriverRow[]>;
  insert(cx: C, table: TableName, values: DriverRow): DriverRow | Promise<DriverRow>;
  /** Creates each row or overwrites its given columns, all in one transaction; rows in input order. */
  upsert(cx: C, table: TableName, rows: readonly DriverRow[]): DriverRow[] | Promise<DriverRow[]>;
  /** Changes the given columns of row `id`, only at `expectedVersion` when given. */
  update(
    cx: C,
    table: TableName,
    id: string,
    values: DriverRow,
    expectedVersion: string | undefined,
  ): DriverRow | Miss | Promise<DriverRow | Miss>;
  /** Deletes row `id` (with what cascades), only at `expectedVersion` when given. */
  delete(
    cx: C,
    table: TableName,
    id: string,
    expectedVersion: string | undefined,
  ): true | Miss | Promise<true | Miss>;
}

/** Omitted and `undefined` mean the same: the column keeps its current or default value. */
const defined = (values: object): DriverRow =>
  Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined));

/** The `Repository` of `table` over `driver`: the one implementation of its rules. */
export function createRepository<T extends TableName, C>(
  table: T,
  driver: RepositoryDriver<C>,
): Repository<T> {
  const run = <R>(
    method: string,
    mode: DriverCall["mode"],
    options: CallOptions | undefined,
    work: (cx: C) => R | Promise<R>,
  ) => driver.run({ action: `${table}.${method}`, table, mode, options }, work);
  const conflict = () =>
    new CvError("conflict", `[${driver.name}] ${table} row changed since it was read (version mismatch)`, {
      table,
    });
  const notFound = () => new CvError("not_found", `[${driver.name}] no ${table} row with this id`, { table });
  const upserted = (rows: readonly DriverRow[], expected: number): Row<T>[] => {
    if (rows.length !== expected) {
      throw new CvError("unknown", `[${driver.name}] the ${table} upsert did not return every row it wrote`, {
        table,
      });
    }
    return rows as Row<T>[];
  };

  return {
    table,
    async get(id, options) {
      const key = parseId(id, table);
      return (await run("get", "read", options, (cx) => driver.get(cx, table, key))) as Row<T> | null;
    },
    async list(query, options) {
      const parsed = parseListQuery(table, query) as ListQuery<DriverRow>;
      return (await run("list", "read", options, (cx) => driver.list(cx, table, parsed))) as Row<T>[];
    },
    async insert(row, options) {
      const values = defined(parseNewRow(table, row));
      return (await run("insert", "write", options, (cx) => driver.insert(cx, table, values))) as Row<T>;
    },
    async upsert(row, options) {
      const values = defined(parseNewRow(table, row));
      const expected = options?.expectedVersion;
      if (expected === undefined) {
        return upserted(
          await run("upsert", "write", options, (cx) => driver.upsert(cx, table, [values])),
          1,
        )[0] as Row<T>;
      }
      // A version precondition needs the row to exist: an insert would create what the caller
      // believed was there at that version.
      const { id, ...changes } = values;
      const written = await run("upsert", "write", options, (cx) =>
        driver.update(cx, table, String(id), changes, expected),
      );
      if (typeof written === "string") throw conflict();
      return written as Row<T>;
    },
    async upsertMany(rows, options) {
      // Validate everything before anything is sent: an invalid row costs no round trip.
      const values = rows.map((row) => defined(parseNewRow(table, row)));
      if (values.length === 0) return [];
      return upserted(
        await run("upsertMany", "write", options, (cx) => driver.upsert(cx, table, values)),
        values.length,
      );
    },
    async update(id, patch, options) {
      const key = parseId(id, table);
      const values = defined(parseRowPatch(table, patch));
      const written = await run("update", "write", options, (cx) =>
        driver.update(cx, table, key, values, options?.expectedVersion),
      );
      if (written === "stale") throw conflict();
      if (written === "missing") throw notFound();
      return written as Row<T>;
    },
    async delete(id, options) {
      const key = parseId(id, table);
      const deleted = await run("delete", "write", options, (cx) =>
        driver.delete(cx, table, key, options?.expectedVersion),
      );
      if (deleted === "stale") throw conflict();
      return deleted === true;
    },
  };
}

/**
 * `DataSource.table` over `driver`: one repository per table, made on first use. A name that is
 * no table (callers in plain JavaScript or over IPC can pass any string, which a driver would turn
 * into an identifier or a URL path) throws `invalid_input`.
 */
export function repositoriesOf<C>(
  driver: RepositoryDriver<C>,
): <T extends TableName>(name: T) => Repository<T> {
  const made = new Map<TableName, Repository<TableName>>();
  return <T extends TableName>(name: T): Repository<T> => {
    let repository = made.get(name);
    if (repository === undefined) {
      if (!Object.hasOwn(tables, name)) throw new CvError("invalid_input", `[${driver.name}] unknown table`);
      repository = createRepository(name, driver) as unknown as Repository<TableName>;
      made.set(name, repository);
    }
    return repository as unknown as Repository<T>;
  };
}
