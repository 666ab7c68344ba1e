import { CvError, isCvError } from "@centrovision/core";

/** What the failing call was doing, so the error can say it without quoting any value. */
export interface SqliteErrorContext {
  /** e.g. `patients.insert`. */
  readonly action: string;
  readonly table?: string;
  /**
   * SQLite names neither the column nor the parent of a failed foreign key; the caller may
   * work it out (see `internal/foreign-key-diagnosis.ts`) and pass the PostgreSQL-style name.
   */
  readonly foreignKey?: { readonly constraint: string; readonly detail: string };
}

const PREFIX = "[adapter-sqlite]";

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  // sql.js throws bare strings for a few misuse cases ("Database closed").
  return typeof error === "string" ? error : "unrecognised failure";
}

/** `patients.document_id, patients.branch_id` → `["document_id", "branch_id"]`. */
function columnsOf(list: string): string[] {
  return list.split(",").map((part) => part.trim().split(".").pop() ?? part.trim());
}

/**
 * Turns whatever sql.js threw into a `CvError`. SQLite's messages name constraints and columns,
 * never bound values, and every value we send is bound, so no row data reaches the message.
 * Constraint names follow PostgreSQL's defaults (`<table>_<cols>_key`, `_pkey`, `_fkey`), so a
 * caller matching on `constraint` behaves the same on every tier.
 */
export function translateSqliteError(error: unknown, context: SqliteErrorContext): CvError {
  if (isCvError(error)) return error;
  const raw = messageOf(error);
  const table = context.table;
  const where = `${PREFIX} ${context.action}`;
  const base = { cause: error, ...(table !== undefined && { table }) };

  const unique = /^UNIQUE constraint failed: (.+)$/.exec(raw);
  if (unique?.[1] !== undefined) {
    const columns = columnsOf(unique[1]);
    const isKey = columns.length === 1 && columns[0] === "id";
    const constraint = isKey ? `${table}_pkey` : `${table}_${columns.join("_")}_key`;
    return new CvError("constraint", `${where}: ${table} already has a row with this ${columns.join(", ")}`, {
      ...base,
      constraint,
    });
  }
  if (raw.startsWith("FOREIGN KEY constraint failed")) {
    const fk = context.foreignKey;
    return new CvError("constraint", `${where}: ${fk?.detail ?? "a foreign key would be broken"}`, {
      ...base,
      ...(fk && { constraint: fk.constraint }),
    });
  }
  const check = /^CHECK constraint failed: (\w+)/.exec(raw);
  if (check?.[1] !== undefined) {
    return new CvError("constraint", `${where}: the row breaks the rule ${check[1]}`, {
      ...base,
      constraint: check[1],
    });
  }
  const notNull = /^NOT NULL constraint failed: (\w+)\.(\w+)$/.exec(raw);
  if (notNull?.[1] !== undefined && notNull[2] !== undefined) {
    return new CvError("constraint", `${where}: ${notNull[1]}.${notNull[2]} must not be null`, {
      ...base,
      constraint: `${notNull[1]}_${notNull[2]}_not_null`,
    });
  }
  const datatype = /^cannot store (\w+) value in (\w+) column (\w+)\.(\w+)$/.exec(raw);
  if (datatype) {
    const path = datatype[4] ?? "(row)";
    return new CvError(
      "invalid_input",
      `${where}: ${path} has the wrong type (${datatype[1]} for ${datatype[2]})`,
      {
        ...base,
        issues: [{ path, message: `expected ${datatype[2]?.toLowerCase()}` }],
      },
    );
  }
  if (/malformed|not a database|out of memory|Database closed/i.test(raw)) {
    return new CvError("unavailable", `${where}: the in-memory database failed (${raw})`, base);
  }
  return new CvError("unknown", `${where} failed: ${raw.slice(0, 200)}`, base);
}

/** An operating-system error on one of the database's files: the tier cannot serve. */
export function fileError(error: unknown, file: string, action: string): CvError {
  if (isCvError(error)) return error;
  const code = (error as NodeJS.ErrnoException | undefined)?.code ?? "EIO";
  const hints: Record<string, string> = {
    ENOSPC: "the disk is full",
    EDQUOT: "the disk quota is exhausted",
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    EROFS: "the disk is read-only",
    ENOENT: "the file or its folder is gone",
    EIO: "the disk reported an I/O error",
  };
  const why = hints[code] ?? "the operating system refused";
  return new CvError("unavailable", `${PREFIX} cannot ${action} ${file}: ${why} (${code})`, { cause: error });
}

/**
 * A database file that is damaged or not ours. `unavailable`, because the device tier cannot
 * serve until someone acts; the message says which file, what is wrong and what to do, and the
 * file is left exactly as it was found.
 */
export function damagedFileError(file: string, problem: string, advice: string): CvError {
  return new CvError(
    "unavailable",
    `${PREFIX} cannot open ${file}: ${problem}. Nothing was changed on disk. ${advice}`,
  );
}

/**
 * The file is intact but was encrypted with another key. `unauthorized`: retrying cannot help,
 * supplying the right key (from the keychain or key file) does.
 */
export function wrongKeyError(file: string): CvError {
  return new CvError(
    "unauthorized",
    `${PREFIX} wrong key for ${file}: the file is intact but was encrypted with a different key. ` +
      "Nothing was changed on disk; open it with the key it was created with.",
  );
}
