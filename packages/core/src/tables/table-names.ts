/**
 * Every EHR table, parents before children: a table only references tables listed before it
 * (or none), so inserting in this order and deleting in reverse never breaks a foreign key.
 */
export const TABLE_NAMES = [
  "branches",
  "rooms",
  "profiles",
  "user_roles",
  "user_branches",
  "patients",
  "appointments",
  "encounters",
  "exam_eye",
  "diagnoses",
] as const;

export type TableName = (typeof TABLE_NAMES)[number];

/**
 * The one declared list of tables the sync engine replicates, in foreign-key order (a subsequence
 * of {@link TABLE_NAMES}). Every EHR table syncs today; a table kept local to one tier would be
 * left out here and nowhere else.
 */
export const SYNCED_TABLES: readonly TableName[] = TABLE_NAMES;
