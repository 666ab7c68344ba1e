import type * as z from "zod";
import { appointments, encounters, patients } from "./clinical.js";
import { diagnoses, exam_eye } from "./examination.js";
import { branches, profiles, rooms, user_branches, user_roles } from "./organization.js";
import type { TableName } from "./table-names.js";

export { ROW_META_COLUMNS } from "./columns.js";
export type {
  ColumnShape,
  ColumnType,
  Defaults,
  ForeignKey,
  PatchShape,
  RowCheck,
  RowShape,
  TableDefinition,
  WriteShape,
} from "./define-table.js";
export {
  APPOINTMENT_STATUSES,
  APPOINTMENT_TYPES,
  DIAGNOSIS_STATUSES,
  ENCOUNTER_STATUSES,
  EYES,
  IOP_METHODS,
  LATERALITIES,
  PATIENT_SEXES,
  ROOM_KINDS,
  STAFF_ROLES,
} from "./enums.js";
export { SYNCED_TABLES, TABLE_NAMES, type TableName } from "./table-names.js";
export { canonicalTimestamp } from "./timestamps.js";

const definitions = {
  branches,
  rooms,
  profiles,
  user_roles,
  user_branches,
  patients,
  appointments,
  encounters,
  exam_eye,
  diagnoses,
} satisfies { readonly [K in TableName]: { readonly name: K } };

/** The definition of table `T`, with its exact column types. */
export type TableDef<T extends TableName> = (typeof definitions)[T];

/** Every table's definition, by name. */
export const tables: { readonly [K in TableName]: TableDef<K> } = definitions;

/** A stored row of `T` in canonical form, as every source returns it. */
export type Row<T extends TableName> = z.output<TableDef<T>["rowSchema"]>;

/** What a caller passes to insert or upsert a row of `T`. */
export type NewRow<T extends TableName> = z.input<TableDef<T>["writeSchema"]>;

/** What a caller passes to update a row of `T`. */
export type RowPatch<T extends TableName> = z.input<TableDef<T>["patchSchema"]>;
