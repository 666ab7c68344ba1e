import { rename, rm } from "node:fs/promises";
import { type ContractHarness, describeSourceContract } from "@centrovision/testkit/contract";
import { createSqliteSource } from "../src/index.js";
import { countStoredRows, readStoredRow, tempDatabase } from "./support/temp-database.js";

describeSourceContract({
  name: "sqlite",
  capabilities: { transactions: true, changeFeed: false, durable: true, rowLevelSecurity: false },
  async create() {
    const db = await tempDatabase();
    let source = await createSqliteSource({ path: db.path, key: db.key });
    const gone = `${db.dir}-gone`;
    const harness: ContractHarness = {
      source,
      // A second, independent reader over the files: what the probe sees was fsync'd to disk.
      probe: {
        row: (table, id) => readStoredRow(db.path, db.key, table, id),
        count: (table) => countStoredRows(db.path, db.key, table),
      },
      // The local failure a PC really sees: the folder holding the database disappears
      // (USB disk pulled, network share dropped, folder deleted by a cleanup tool).
      cut: () => rename(db.dir, gone),
      async reopen() {
        await source.close();
        source = await createSqliteSource({ path: db.path, key: db.key });
        harness.source = source;
      },
      async cleanup() {
        await source.close().catch(() => {});
        await Promise.all([db.remove(), rm(gone, { recursive: true, force: true })]);
      },
    };
    return harness;
  },
});
