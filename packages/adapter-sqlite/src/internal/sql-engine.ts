import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { CvError } from "@centrovision/core";
import initSqlJs, { type Database, type SqlJsStatic } from "sql.js";
import { SCHEMA_HASH, SCHEMA_STATEMENTS } from "./schema-ddl.js";

export type { Database, SqlValue } from "sql.js";

let engine: Promise<SqlJsStatic> | undefined;

/**
 * sql.js compiled to WebAssembly, loaded once per process. The wasm file is located through the
 * sql.js package itself, so it works from the monorepo, an installed package or a bundled app
 * that ships node_modules. A failed load is not cached, so a later open can retry.
 */
export function loadSqlJs(): Promise<SqlJsStatic> {
  engine ??= (async () => {
    const require = createRequire(import.meta.url);
    const wasmBinary = await readFile(require.resolve("sql.js/dist/sql-wasm.wasm"));
    const buffer = wasmBinary.buffer.slice(
      wasmBinary.byteOffset,
      wasmBinary.byteOffset + wasmBinary.byteLength,
    );
    return initSqlJs({ wasmBinary: buffer as ArrayBuffer });
  })().catch((error: unknown) => {
    engine = undefined;
    throw new CvError("unavailable", "[adapter-sqlite] cannot load the sql.js WebAssembly module", {
      cause: error,
    });
  });
  return engine;
}

/** Why an image cannot be used, for the caller to turn into an error naming its file. */
export class SchemaMismatch extends Error {
  override readonly name = "SchemaMismatch";
}

/**
 * Opens an in-memory database, from a snapshot image or empty with the generated schema.
 * Every connection gets the same settings and functions, because the schema's defaults and
 * triggers call `cv_uuid()` and foreign keys are off by default in SQLite.
 *
 * @throws SchemaMismatch when the image was written under other table definitions.
 */
export async function openDatabase(image?: Uint8Array): Promise<Database> {
  const SQL = await loadSqlJs();
  const db = new SQL.Database(image);
  try {
    // Version ids must be unique across every PC: Node's CSPRNG, not SQLite's own PRNG.
    db.create_function("cv_uuid", () => randomUUID());
    // The database lives in wasm memory; its durability comes from our journal, not SQLite's.
    db.exec(
      "PRAGMA foreign_keys = ON; PRAGMA journal_mode = MEMORY; PRAGMA synchronous = OFF; PRAGMA temp_store = MEMORY",
    );
    if (image === undefined) {
      db.exec("BEGIN");
      for (const statement of SCHEMA_STATEMENTS) db.exec(statement);
      db.run("INSERT INTO cv_meta (key, value) VALUES ('schema_hash', ?)", [SCHEMA_HASH]);
      db.exec("COMMIT");
    } else {
      const found = db.exec("SELECT value FROM cv_meta WHERE key = 'schema_hash'")[0]?.values[0]?.[0];
      if (found !== SCHEMA_HASH) {
        throw new SchemaMismatch(
          `it was written with other table definitions (schema ${String(found)}, expected ${SCHEMA_HASH})`,
        );
      }
    }
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}
