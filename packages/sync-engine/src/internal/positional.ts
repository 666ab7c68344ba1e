import type { ChangeAuthor, SyncChange } from "../sync-types.js";

/**
 * The positional batch of sql/functions/08_positional.sql: each table's columns named once, each
 * row as its values in that order, the row id and origin left for the target to derive (the row's
 * id, the node ending the HLC) and each author sent once. About half the array form's bytes, and
 * the values are moved, not converted: the target reads it into the very entries the array gives.
 */
export interface PositionalBatch {
  readonly format: "positional";
  readonly tables: readonly { readonly name: string; readonly columns: readonly string[] }[];
  readonly authors: readonly ChangeAuthor[];
  /** [table, op, values, version, base_version, hlc, changed_columns, resolves, author, seq] */
  readonly changes: readonly unknown[][];
}

/** The fields of a change the positional batch carries, or derives on the target. */
const CARRIED = new Set([
  "table",
  "row_id",
  "op",
  "row",
  "version",
  "base_version",
  "origin",
  "hlc",
  "changed_columns",
  "resolves",
  "author",
  "txid",
  "seq",
]);

/**
 * `changes` as a positional batch; undefined when one of them does not fit it, so the batch goes
 * as the array and the target sees every change as it was sent: a field this engine does not know
 * (a newer source's), or a row id or origin the target could not derive from the row and the HLC.
 * `txid` is left out: the batch's cursor says where it ends. No changes go as the array too: `[]`
 * is shorter.
 */
export function positionalBatch(changes: readonly SyncChange[]): PositionalBatch | undefined {
  if (changes.length === 0) return undefined;
  const tables: { name: string; columns: string[] }[] = [];
  const tableIndex = new Map<string, number>();
  const authors: ChangeAuthor[] = [];
  const authorIndex = new Map<string, number>();
  const entries: unknown[][] = [];
  for (const change of changes) {
    for (const field in change) if (!CARRIED.has(field)) return undefined;
    const { row, author } = change;
    if (row.id !== change.row_id || !change.hlc.endsWith(`.${change.origin}`)) return undefined;
    const columns = Object.keys(row);
    const tableKey = `${change.table}\u0000${columns.join("\u0000")}`;
    let table = tableIndex.get(tableKey);
    if (table === undefined) {
      table = tables.push({ name: change.table, columns }) - 1;
      tableIndex.set(tableKey, table);
    }
    let authorAt: number | null = null;
    if (author !== undefined && author !== null) {
      const authorKey = JSON.stringify(author);
      authorAt = authorIndex.get(authorKey) ?? null;
      if (authorAt === null) {
        authorAt = authors.push(author) - 1;
        authorIndex.set(authorKey, authorAt);
      }
    }
    entries.push([
      table,
      change.op,
      columns.map((column) => row[column]),
      change.version,
      change.base_version,
      change.hlc,
      change.changed_columns,
      change.resolves ?? null,
      authorAt,
      change.seq,
    ]);
  }
  return { format: "positional", tables, authors, changes: entries };
}
