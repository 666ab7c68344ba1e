import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CvError, type TableName, tables } from "@centrovision/core";
import { afterEach, beforeEach, expect } from "vitest";
import { createSqliteSource, openSqliteReadOnly, type SqliteSource } from "../../src/index.js";

/** A fresh folder and key for one test; `remove` deletes everything it made. */
export async function tempDatabase() {
  const dir = await mkdtemp(join(tmpdir(), "cv-sqlite-"));
  return {
    dir,
    path: join(dir, "clinic.cvdb"),
    key: randomBytes(32),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

export type TempDatabase = Awaited<ReturnType<typeof tempDatabase>>;

/** A fresh database and an open source over it for each test of the calling file; closed and removed after. */
export function useTempSource(): { db: TempDatabase; source: SqliteSource } {
  const current = {} as { db: TempDatabase; source: SqliteSource };
  beforeEach(async () => {
    current.db = await tempDatabase();
    current.source = await createSqliteSource({ path: current.db.path, key: current.db.key });
  });
  afterEach(async () => {
    await current.source.close().catch(() => {});
    await current.db.remove();
  });
  return current;
}

/** The CvError `promise` rejects with (fails the test if it resolves or rejects with anything else). */
export async function failure(promise: Promise<unknown>): Promise<CvError> {
  const error = await promise.then(
    () => new Error("expected a failure"),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CvError);
  return error as CvError;
}

/**
 * Reads one row straight from the files with a separate reader, converting booleans itself
 * (from the column types) rather than through the adapter's decoder, so a decoding bug that is
 * symmetric in the adapter's read and write paths still shows.
 */
export async function readStoredRow(path: string, key: Uint8Array, table: TableName, id: string) {
  const reader = await openSqliteReadOnly(path, key);
  try {
    const raw = reader.all(`SELECT * FROM "${table}" WHERE id = ?`, [id])[0];
    if (raw === undefined) return null;
    const types = tables[table].columnTypes as Record<string, string>;
    return Object.fromEntries(
      Object.entries(raw).map(([column, value]) => [
        column,
        types[column] === "boolean" && value !== null ? value === 1 : value,
      ]),
    );
  } finally {
    reader.close();
  }
}

/** Row count straight from the files. */
export async function countStoredRows(path: string, key: Uint8Array, table: TableName): Promise<number> {
  const reader = await openSqliteReadOnly(path, key);
  try {
    return Number(reader.all(`SELECT count(*) AS n FROM "${table}"`)[0]?.n ?? 0);
  } finally {
    reader.close();
  }
}
