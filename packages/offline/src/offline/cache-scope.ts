import type { ListQuery, OrderBy, Row, TableName, Where } from "@centrovision/core";
import type { OfflineTierConfig } from "./offline-options.js";

export type AnyRow = Row<TableName> & Readonly<Record<string, unknown>> & { id: string; updated_at: string };
type Scope = OfflineTierConfig["scope"];

/** The dates a refresh works with, computed once per refresh. */
export interface ScopeWindow {
  readonly appointmentsFrom: string;
  readonly appointmentsTo: string;
  readonly encountersFrom: string;
}

const DAY = 86_400_000;

export function scopeWindow(scope: Scope, now: Date): ScopeWindow {
  // From 24 h back: "today" in the branch's time zone, whatever it is, is inside.
  const start = now.getTime() - DAY;
  return {
    appointmentsFrom: new Date(start).toISOString(),
    appointmentsTo: new Date(now.getTime() + (scope.daysAhead + 1) * DAY).toISOString(),
    encountersFrom: new Date(now.getTime() - scope.encounterDays * DAY).toISOString(),
  };
}

/** Rows selected by a filter on the table itself. */
interface WhereStep {
  readonly kind: "where";
  readonly table: TableName;
  query(scope: Scope, window: ScopeWindow): ListQuery<Record<string, unknown>>;
}

/** Rows whose `column` is one of the ids (`inputColumn`) of the rows an earlier step selected. */
interface IdsStep {
  readonly kind: "ids";
  readonly table: TableName;
  readonly column: string;
  readonly input: TableName;
  readonly inputColumn: string;
  where?(scope: Scope, window: ScopeWindow): Where<Record<string, unknown>>;
  /** Bound applied to the selected rows: keep the first `limit(scope)` in this order. */
  readonly cap?: { readonly order: OrderBy<Record<string, unknown>>; limit(scope: Scope): number };
}

export type ScopeStep = WhereStep | IdsStep;

/**
 * What a PC keeps, in foreign-key order. Each step's rows bound the next ones', so the whole copy
 * is bounded by `maxAppointments` and `maxEncounters` whatever the size of the clinic's database.
 * Parents these rows reference (a past appointment of a recent encounter, a doctor from another
 * branch) are kept too (see `keepParents`).
 */
export const SCOPE_STEPS: readonly ScopeStep[] = [
  { kind: "where", table: "branches", query: (s) => ({ where: { id: s.branchId } }) },
  { kind: "where", table: "rooms", query: (s) => ({ where: { branch_id: s.branchId } }) },
  { kind: "where", table: "user_branches", query: (s) => ({ where: { branch_id: s.branchId } }) },
  { kind: "ids", table: "profiles", column: "id", input: "user_branches", inputColumn: "user_id" },
  { kind: "ids", table: "user_roles", column: "user_id", input: "profiles", inputColumn: "id" },
  {
    kind: "where",
    table: "appointments",
    query: (s, w) => ({
      where: { branch_id: s.branchId, starts_at: { gte: w.appointmentsFrom, lt: w.appointmentsTo } },
      orderBy: [{ column: "starts_at" }],
      limit: s.maxAppointments,
    }),
  },
  { kind: "ids", table: "patients", column: "id", input: "appointments", inputColumn: "patient_id" },
  {
    kind: "ids",
    table: "encounters",
    column: "patient_id",
    input: "patients",
    inputColumn: "id",
    where: (_s, w) => ({ started_at: { gte: w.encountersFrom } }),
    cap: { order: { column: "started_at", direction: "desc" }, limit: (s) => s.maxEncounters },
  },
  { kind: "ids", table: "exam_eye", column: "encounter_id", input: "encounters", inputColumn: "id" },
  { kind: "ids", table: "diagnoses", column: "encounter_id", input: "encounters", inputColumn: "id" },
];

/** Distinct non-null values of `column` in `rows`. */
export function valuesOf(rows: readonly AnyRow[], column: string): string[] {
  const values = new Set<string>();
  for (const row of rows) {
    const value = row[column];
    if (typeof value === "string") values.add(value);
  }
  return [...values];
}

export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Sorts by the cap's column (ISO timestamps compare as text) and keeps the first `limit`. */
export function applyCap(rows: AnyRow[], cap: IdsStep["cap"], scope: Scope): AnyRow[] {
  if (!cap) return rows;
  const column = cap.order.column;
  const sign = cap.order.direction === "desc" ? -1 : 1;
  const compare = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  return [...rows]
    .sort((a, b) => sign * compare(String(a[column]), String(b[column])) || compare(a.id, b.id))
    .slice(0, cap.limit(scope));
}
