/**
 * Writes patients until killed, printing `ack <id>` after each write resolves (for a batch,
 * one line per row). Arguments: database path, key as hex, branch id, a label for the names.
 * The small snapshot threshold makes snapshots frequent, so a kill also lands inside them.
 */
import { randomUUID } from "node:crypto";
import { createSqliteSource } from "../../src/index.js";

const [path, keyHex, branchId, label] = process.argv.slice(2) as [string, string, string, string];
const source = await createSqliteSource({
  path,
  key: Buffer.from(keyHex, "hex"),
  snapshotAfterBytes: 64 * 1024,
});
await source.table("branches").upsert({
  id: branchId,
  code: "SUC-DURABLE",
  name: "Clínica de prueba",
  address: "Av. Reforma 1, Ciudad de México",
});

const patient = (n: number) => ({
  id: randomUUID(),
  branch_id: branchId,
  first_name: `${label}-${n}`,
  last_name: "Quiñónez",
  birth_date: "1970-01-01",
  sex: "female" as const,
  phone: "+52 55 0000 0000",
});

for (let n = 1; ; n++) {
  if (n % 7 === 0) {
    const batch = [patient(n), patient(n + 0.5), patient(n + 0.25)];
    await source.table("patients").upsertMany(batch);
    process.stdout.write(batch.map((row) => `ack ${row.id}\n`).join(""));
  } else {
    const row = patient(n);
    await source.table("patients").insert(row);
    process.stdout.write(`ack ${row.id}\n`);
  }
}
