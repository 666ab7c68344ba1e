import { randomUUID } from "node:crypto";
import * as z from "zod";
import type { Capabilities, DataSource } from "../data-source.js";
import { type CallOptions, withDeadline } from "../deadline.js";
import { CvError } from "../errors.js";
import { applyListQuery, type EnumRanks } from "../internal/row-query.js";
import { type Miss, type RepositoryDriver, repositoriesOf } from "../repository-driver.js";
import { canonicalTimestamp, TABLE_NAMES, type TableName, tables } from "../tables/index.js";

type AnyRow = Record<string, unknown>;

export interface MemorySourceOptions {
  id?: string;
  /** Default deadline per call. */
  timeoutMs?: number;
}

/** A memory source plus direct access to its store, which tests use to check what was really stored. */
export interface MemorySource extends DataSource {
  readonly store: {
    row(table: TableName, id: string): AnyRow | null;
    count(table: TableName): number;
  };
}

/** Declaration order of each enum column's labels, which is how PostgreSQL sorts and compares them. */
function enumRanks(table: TableName): EnumRanks {
  const def = tables[table];
  const ranks: Record<string, ReadonlyMap<string, number>> = {};
  for (const [column, type] of Object.entries(def.columnTypes)) {
    if (type !== "enum") continue;
    const schema = def.rowSchema.shape[column as never] as z.ZodType;
    const inner = schema instanceof z.ZodNullable ? schema.unwrap() : schema;
    if (inner instanceof z.ZodEnum)
      ranks[column] = new Map(inner.options.map((label, i) => [String(label), i]));
  }
  return ranks;
}

const RANKS = Object.fromEntries(TABLE_NAMES.map((table) => [table, enumRanks(table)])) as Record<
  TableName,
  EnumRanks
>;

const CAPABILITIES: Capabilities = {
  transactions: true,
  changeFeed: false,
  durable: false,
  rowLevelSecurity: false,
};

/**
 * A source held in memory that behaves like the SQL ones: same validation,
 * defaults, row versions, unique and foreign-key checks, C-collation order.
 * It is the contract suite's reference and a test double that needs no server.
 */
export function createMemorySource(options: MemorySourceOptions = {}): MemorySource {
  const id = options.id ?? "memory";
  const timeoutMs = options.timeoutMs ?? 5_000;
  const store = new Map<TableName, Map<string, AnyRow>>(TABLE_NAMES.map((name) => [name, new Map()]));
  let closed = false;

  const rowsOf = (table: TableName) => store.get(table) as Map<string, AnyRow>;

  async function call<R>(
    label: string,
    callOptions: CallOptions | undefined,
    work: () => R | Promise<R>,
  ): Promise<R> {
    if (closed) throw new CvError("unavailable", `[core] memory source ${id} is closed`);
    return withDeadline(`[core] ${label}`, callOptions, timeoutMs, async () => structuredClone(await work()));
  }

  function checkConstraints(table: TableName, row: AnyRow): void {
    const def = tables[table];
    for (const fk of def.foreignKeys) {
      const parentId = row[fk.column];
      if (parentId !== null && parentId !== undefined && !rowsOf(fk.references).has(String(parentId))) {
        throw new CvError(
          "constraint",
          `[core] ${table}.${fk.column} references a missing ${fk.references} row`,
          {
            table,
            constraint: `${table}_${fk.column}_fkey`,
          },
        );
      }
    }
    for (const columns of def.uniques) {
      // As in SQL, a unique key containing NULL never collides.
      if (columns.some((column) => row[column] === null || row[column] === undefined)) continue;
      for (const other of rowsOf(table).values()) {
        if (other.id !== row.id && columns.every((column) => other[column] === row[column])) {
          throw new CvError(
            "constraint",
            `[core] ${table} already has a row with this ${columns.join(", ")}`,
            {
              table,
              constraint: `${table}_${columns.join("_")}_key`,
            },
          );
        }
      }
    }
  }

  /**
   * What the `cv_touch_row` trigger does in SQL: timestamps and version chain. No verified person
   * writes here: `created_by`/`updated_by` stay null.
   */
  function write(table: TableName, current: AnyRow | undefined, values: AnyRow): AnyRow {
    const now = canonicalTimestamp(new Date());
    const def = tables[table];
    const next: AnyRow = current
      ? {
          ...current,
          ...values,
          created_at: current.created_at,
          updated_at: now,
          created_by: current.created_by,
          updated_by: null,
          base_version: current.version,
          version:
            values.version !== undefined && values.version !== current.version
              ? values.version
              : randomUUID(),
        }
      : {
          ...Object.fromEntries(def.columns.map((column) => [column, null])),
          ...def.defaults,
          created_at: now,
          updated_at: now,
          version: randomUUID(),
          base_version: null,
          ...values,
          created_by: null,
          updated_by: null,
        };
    checkConstraints(table, next);
    const stored = def.rowSchema.parse(next) as AnyRow;
    rowsOf(table).set(String(stored.id), stored);
    return stored;
  }

  function deleteRow(table: TableName, rowId: string): void {
    for (const child of TABLE_NAMES) {
      for (const fk of tables[child].foreignKeys) {
        if (fk.references !== table) continue;
        for (const childRow of [...rowsOf(child).values()]) {
          if (childRow[fk.column] !== rowId) continue;
          if (fk.onDelete === "restrict") {
            throw new CvError(
              "constraint",
              `[core] ${table} row is still referenced by ${child}.${fk.column}`,
              {
                table,
                constraint: `${child}_${fk.column}_fkey`,
              },
            );
          }
          if (fk.onDelete === "cascade") deleteRow(child, String(childRow.id));
          else rowsOf(child).set(String(childRow.id), { ...childRow, [fk.column]: null });
        }
      }
    }
    rowsOf(table).delete(rowId);
  }

  /** Runs `work` on a copy of the store and keeps the copy only if it succeeds: all or nothing. */
  function atomically<R>(work: () => R): R {
    const snapshot = new Map([...store].map(([name, rows]) => [name, new Map(rows)]));
    try {
      return work();
    } catch (error) {
      for (const [name, rows] of snapshot) store.set(name, rows);
      throw error;
    }
  }

  /** A miss of an update or delete of `rowId`, or the row it may change. */
  function target(table: TableName, rowId: string, expectedVersion: string | undefined): AnyRow | Miss {
    const current = rowsOf(table).get(rowId);
    if (current === undefined) return "missing";
    return expectedVersion !== undefined && current.version !== expectedVersion ? "stale" : current;
  }

  const driver: RepositoryDriver<void> = {
    name: "core",
    run: (c, work) => call(c.action, c.options, () => (c.mode === "write" ? atomically(work) : work())),
    get: (_, table, rowId) => rowsOf(table).get(rowId) ?? null,
    list: (_, table, query) => applyListQuery(rowsOf(table).values(), query, RANKS[table]),
    insert(_, table, values) {
      if (rowsOf(table).has(String(values.id))) {
        throw new CvError("constraint", `[core] ${table} already has a row with this id`, {
          table,
          constraint: `${table}_pkey`,
        });
      }
      return write(table, undefined, values);
    },
    upsert: (_, table, rows) =>
      rows.map((values) => write(table, rowsOf(table).get(String(values.id)), values)),
    update(_, table, rowId, values, expectedVersion) {
      const current = target(table, rowId, expectedVersion);
      return typeof current === "string" ? current : write(table, current, values);
    },
    delete(_, table, rowId, expectedVersion) {
      const current = target(table, rowId, expectedVersion);
      if (typeof current === "string") return current;
      deleteRow(table, rowId);
      return true;
    },
  };

  return {
    id,
    kind: "memory",
    capabilities: CAPABILITIES,
    probe: (o) => call("probe", o, () => ({ latencyMs: 0 })),
    table: repositoriesOf(driver),
    store: {
      row: (table, rowId) => structuredClone(rowsOf(table).get(rowId) ?? null),
      count: (table) => rowsOf(table).size,
    },
    async close() {
      closed = true;
    },
  };
}
