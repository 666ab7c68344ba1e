import { randomUUID } from "node:crypto";
import { tables } from "@centrovision/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createSqliteSource, openSqliteReadOnly } from "../src/index.js";
import { tempDatabase } from "./support/temp-database.js";
import { runWriterUntilKilled } from "./support/writer-process.js";

type Db = Awaited<ReturnType<typeof tempDatabase>>;

describe("kill -9 while writing", () => {
  let db: Db;
  beforeEach(async () => {
    db = await tempDatabase();
  });
  afterEach(() => db.remove());

  it("keeps every acknowledged write, never a half row, across repeated kills", async () => {
    const branchId = randomUUID();
    const acked: string[] = [];
    // Kill points vary: right after an ack, and a little later (inside the next write's fsync,
    // or inside a snapshot, which the child triggers every ~64 KiB of journal).
    const kills = [
      { killAfter: 150, delayMs: 0 },
      { killAfter: 90, delayMs: 3 },
      { killAfter: 220, delayMs: 11 },
    ];
    for (const [round, kill] of kills.entries()) {
      const run = await runWriterUntilKilled({
        ...kill,
        path: db.path,
        keyHex: db.key.toString("hex"),
        branchId,
        label: `r${round}`,
      });
      expect(run.signal, run.stderr).toBe("SIGKILL");
      expect(run.acked.length).toBeGreaterThanOrEqual(kill.killAfter);
      acked.push(...run.acked);

      const reader = await openSqliteReadOnly(db.path, db.key);
      try {
        const rows = reader.all("SELECT * FROM patients");
        const stored = new Set(rows.map((row) => String(row.id)));
        const missing = acked.filter((id) => !stored.has(id));
        expect(missing, `round ${round}: acknowledged rows lost`).toEqual([]);
        // Rows written but not acknowledged may be there: at most the one call in flight per kill
        // (a batch is 3 rows), and they stay in later rounds.
        expect(stored.size - acked.length).toBeLessThanOrEqual(3 * (round + 1));
        for (const row of rows) expect(() => tables.patients.rowSchema.parse(row)).not.toThrow();
      } finally {
        reader.close();
      }
    }

    // The writer's own recovery path (lock left by a dead process, torn tail cut) opens it too.
    const source = await createSqliteSource({ path: db.path, key: db.key });
    expect(await source.table("patients").list({ where: { id: { in: acked } } })).toHaveLength(acked.length);
    await source.close();
  }, 60_000);
});
