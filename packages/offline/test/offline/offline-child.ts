/**
 * Child process for kill -9 tests, on the PC's offline tier. Arguments: mode, database path, key
 * as hex, branch id, and for `drain` the clinic server URL (a centrovision_app login), which acts
 * as the person of the clinic session in environment variable CV_CLINIC_SESSION.
 * - `write`: registers patients until killed, printing `ack <id>` after each write resolves.
 * - `drain`: drains the outbox in batches of 10, printing `batch <done>` after each.
 */
import { randomUUID } from "node:crypto";
import { createSqliteSource } from "@centrovision/adapter-sqlite";
import { createClientApplier, createOfflineTier } from "../../src/index.js";

const [mode, path, keyHex, branchId, serverUrl] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const store = await createSqliteSource({
  path,
  key: Buffer.from(keyHex, "hex"),
  snapshotAfterBytes: 64 * 1024,
});
const tier = createOfflineTier({ store, scope: { branchId }, drainBatchSize: 10 });

if (mode === "drain") {
  const session = process.env.CV_CLINIC_SESSION;
  await tier.drain(createClientApplier({ postgres: { url: serverUrl, session: () => session } }), {
    onProgress: ({ done }) => process.stdout.write(`batch ${done}\n`),
  });
  process.exit(0);
}

for (let n = 1; ; n++) {
  const id = randomUUID();
  await tier.source.table("patients").insert({
    id,
    branch_id: branchId,
    first_name: `Paciente ${n}`,
    last_name: "Sin Conexión",
    birth_date: "1980-02-29",
    sex: "unknown",
    phone: "55 0000 0000",
  });
  process.stdout.write(`ack ${id}\n`);
}
