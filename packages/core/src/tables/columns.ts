import * as z from "zod";
import { tryCanonicalTimestamp } from "./timestamps.js";

/*
 * Column builders shared by every table. Each validation mirrors a CHECK in sql/0001_ehr_schema.sql
 * with the same rule, so zod rejects a row before PostgreSQL would (test/schema-validation.test.ts
 * feeds the same values to both). Number steps are stricter than numeric(p,s), which would round.
 */

/** `uuid`: any version (PostgreSQL does not enforce RFC 4122), canonical lowercase. */
export const uuid = () => z.guid().toLowerCase();

/**
 * `timestamptz(3)`: ISO-8601 with any offset in, canonical UTC milliseconds out.
 * `overwrite` keeps the schema a string schema (introspectable, same input and output type);
 * it also runs after a failed format check, hence the pass-through of invalid values.
 */
export const timestamp = () =>
  z.iso.datetime({ offset: true }).overwrite((value) => tryCanonicalTimestamp(value) ?? value);

/**
 * Every text column starts here. PostgreSQL's `text` and `jsonb` cannot hold U+0000 (SQLSTATE
 * 22021, 22P05) but SQLite can: a NUL accepted on a PC working offline would be stored there and
 * then fail its whole outbox drain on the server, holding back every write queued behind it.
 * Refused here, it is `invalid_input` on every tier before any database sees it.
 */
const string = () =>
  z
    .string()
    .refine(
      (value) => !value.includes("\u0000"),
      "must not contain the NUL character (U+0000), which no server can store: remove it " +
        "(it usually comes with text pasted from another program)",
    );

/** `text` that must contain a visible character. SQL: `CHECK (col ~ '\S')`. */
export const text = () => string().regex(/\S/, "must not be blank");

/** `text` matching `pattern`, the same regular expression as the column's SQL CHECK. */
export const patterned = (pattern: RegExp, message: string) => string().regex(pattern, message);

/** Phone numbers as typed at reception: digits, spaces, parentheses, dashes, optional leading `+`. */
export const phone = () => patterned(/^\+?[0-9() -]{7,25}$/, "must be a phone number like +52 55 1234 5678");

/**
 * E-mail address without uppercase letters, so the unique constraint cannot hold two spellings.
 * Only ASCII letters count: lower() on non-ASCII depends on the database locale, a regex does not.
 */
export const email = () =>
  patterned(/^[^@\s]+@[^@\s]+\.[^@\s]+$/, "must be an e-mail address").regex(
    /^[^A-Z]*$/,
    "must be lowercase",
  );

/**
 * Columns every table has, in column order. `version` identifies the row's current content and
 * `base_version` the version it replaced; the sync engine detects concurrent edits with them.
 * `created_by`/`updated_by` are the user ids of the verified people who created the row and wrote
 * this version, stamped by the server they wrote on; null where no verified person wrote (the
 * database owner, or a PC's offline copy until its outbox reaches a server, which stamps its
 * person then).
 */
export const rowMetaShape = {
  id: uuid(),
  created_at: timestamp(),
  updated_at: timestamp(),
  version: uuid(),
  base_version: uuid().nullable(),
  created_by: uuid().nullable(),
  updated_by: uuid().nullable(),
};

/**
 * The same columns as a writer sends them: `id` is made by the writer, the rest by the database.
 * A writer may pass a row as read (the database's values are kept or replaced, never trusted).
 */
export const writeMetaShape = {
  id: uuid(),
  created_at: timestamp().optional(),
  updated_at: timestamp().optional(),
  version: uuid().optional(),
  base_version: uuid().nullable().optional(),
  created_by: uuid().nullable().optional(),
  updated_by: uuid().nullable().optional(),
};

/** The columns every table starts with; sql/0002_row_versions.sql maintains all but `id`. */
export const ROW_META_COLUMNS = [
  "id",
  "created_at",
  "updated_at",
  "version",
  "base_version",
  "created_by",
  "updated_by",
] as const;
