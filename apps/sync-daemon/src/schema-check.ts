import { isCvError } from "@centrovision/core";
import { refuseNewerDatabase } from "@centrovision/core/migrations";
import postgres from "postgres";
import type { DaemonConfig } from "./config/load-config.js";
import { readMigrations, SHIPPED_MIGRATIONS_DIR } from "./migrations.js";

/**
 * Refuses to run against a clinic database a newer CentroVision migrated (`conflict`, naming the
 * version to install): this build would sync with code that does not know the newer schema. As
 * the daemon's own login, which `init` lets read the bookkeeping. A database that cannot be asked
 * now (down, a wrong password) is not a reason to refuse: the sync retries it and says why, like
 * any outage, and the check runs at the next start; `checked` says which happened.
 */
export async function checkClinicSchema(config: DaemonConfig): Promise<{ checked: boolean }> {
  const migrations = await readMigrations(config.paths.migrationsDir ?? SHIPPED_MIGRATIONS_DIR);
  const sql = postgres(config.clinic.url, {
    max: 1,
    onnotice: () => {},
    connect_timeout: Math.ceil(config.clinic.timeoutMs / 1000),
  });
  try {
    await refuseNewerDatabase(sql, migrations);
    return { checked: true };
  } catch (error) {
    if (isCvError(error, "conflict")) throw error;
    return { checked: false };
  } finally {
    await sql.end({ timeout: 1 });
  }
}
