import { CvError } from "../errors.js";
import type { ColumnFilter, ListQuery, OrderBy } from "../repository.js";

type Value = unknown;
type AnyRow = Record<string, Value>;

/** Code-point order, which is what PostgreSQL's C collation and SQLite's BINARY compare. */
function compareText(a: string, b: string): number {
  const left = Array.from(a);
  const right = Array.from(b);
  const length = Math.min(left.length, right.length);
  for (let i = 0; i < length; i++) {
    const diff = (left[i]?.codePointAt(0) ?? 0) - (right[i]?.codePointAt(0) ?? 0);
    if (diff !== 0) return diff;
  }
  return left.length - right.length;
}

const ISO_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;

/** Rank of each label of an enum column: PostgreSQL orders enums by declaration, not alphabetically. */
export type EnumRanks = Readonly<Record<string, ReadonlyMap<string, number>>>;

/** Compares two non-null column values; timestamps by instant, whatever their offsets; enums by rank. */
export function compareValues(a: Value, b: Value, rank?: ReadonlyMap<string, number>): number {
  if (rank && typeof a === "string" && typeof b === "string") {
    const left = rank.get(a);
    const right = rank.get(b);
    if (left !== undefined && right !== undefined) return left - right;
  }
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (typeof a === "boolean" && typeof b === "boolean") return Number(a) - Number(b);
  if (typeof a === "string" && typeof b === "string") {
    if (ISO_TIMESTAMP.test(a) && ISO_TIMESTAMP.test(b)) return Date.parse(a) - Date.parse(b);
    return compareText(a, b);
  }
  throw new CvError("invalid_input", `[core] cannot compare a ${typeof a} with a ${typeof b}`);
}

function isOperatorObject(filter: unknown): filter is Exclude<ColumnFilter<Value>, Value> & object {
  return typeof filter === "object" && filter !== null && !Array.isArray(filter);
}

function matchesColumn(
  value: Value,
  filter: ColumnFilter<Value>,
  rank?: ReadonlyMap<string, number>,
): boolean {
  if (filter === null) return value === null;
  if (!isOperatorObject(filter)) return value !== null && compareValues(value, filter, rank) === 0;
  const ops = filter as Record<string, unknown>;
  if (ops.isNull !== undefined && (value === null) !== ops.isNull) return false;
  const comparisons: [string, (c: number) => boolean][] = [
    ["eq", (c) => c === 0],
    ["neq", (c) => c !== 0],
    ["gt", (c) => c > 0],
    ["gte", (c) => c >= 0],
    ["lt", (c) => c < 0],
    ["lte", (c) => c <= 0],
  ];
  for (const [op, test] of comparisons) {
    if (ops[op] === undefined) continue;
    // SQL semantics: any comparison with NULL is not true.
    if (value === null || !test(compareValues(value, ops[op], rank))) return false;
  }
  if (ops.in !== undefined) {
    const list = ops.in as readonly Value[];
    if (value === null || !list.some((item) => compareValues(value, item, rank) === 0)) return false;
  }
  return true;
}

export function matchesWhere(row: AnyRow, where: ListQuery<AnyRow>["where"], ranks: EnumRanks = {}): boolean {
  if (!where) return true;
  return Object.entries(where).every(
    ([column, filter]) => filter === undefined || matchesColumn(row[column] ?? null, filter, ranks[column]),
  );
}

function compareByOrder(a: AnyRow, b: AnyRow, order: OrderBy<AnyRow>, ranks: EnumRanks): number {
  const desc = order.direction === "desc";
  const nullsFirst = order.nulls ? order.nulls === "first" : desc;
  const left = a[order.column] ?? null;
  const right = b[order.column] ?? null;
  if (left === null || right === null) {
    if (left === right) return 0;
    return (left === null) === nullsFirst ? -1 : 1;
  }
  const c = compareValues(left, right, ranks[order.column]);
  return desc ? -c : c;
}

/** Filters, orders (then by id) and pages rows exactly as the SQL sources do. */
export function applyListQuery<R extends AnyRow>(
  rows: Iterable<R>,
  query: ListQuery<R> = {},
  ranks: EnumRanks = {},
): R[] {
  const orders = [...((query.orderBy ?? []) as readonly OrderBy<AnyRow>[]), { column: "id" }];
  const matching = [...rows].filter((row) =>
    matchesWhere(row, query.where as ListQuery<AnyRow>["where"], ranks),
  );
  matching.sort((a, b) => {
    for (const order of orders) {
      const c = compareByOrder(a, b, order, ranks);
      if (c !== 0) return c;
    }
    return 0;
  });
  const start = query.offset ?? 0;
  return matching.slice(start, query.limit === undefined ? undefined : start + query.limit);
}
