import {
  applyMigrations,
  createLink,
  type Link,
  type LocalSupabase,
  type PostgresServer,
  startLocalSupabase,
  startPostgres,
} from "@centrovision/testkit";
import { onDatabase } from "../src/demo/demo-stack.js";

/** A person with a Supabase account and their profile on both tiers. */
export interface StackPerson {
  readonly email: string;
  readonly password: string;
  readonly name: string;
}

export interface ClinicStack {
  readonly cloud: LocalSupabase;
  readonly clinic: PostgresServer;
  /** Superuser URL of the clinic database. */
  readonly clinicDb: string;
  /** In front of the cloud ("the internet") and of the clinic server ("the LAN"). */
  readonly internet: Link;
  readonly lan: Link;
  readonly personId: string;
  /** The PC's login: in role centrovision_app, alone it reads no row. */
  readonly pcLogin: { readonly user: string; readonly password: string };
  /** The cloud's URL through the internet link. */
  readonly cloudUrl: string;
  /** The PC login's URL through the LAN link (`direct`: straight to the server). */
  pcLoginUrl(direct?: boolean): string;
  stop(): Promise<void>;
}

/**
 * A local Supabase (the cloud) and a clinic PostgreSQL with the migrations, each behind a link,
 * one person, and what the sync daemon would have done: the person's profile on the clinic
 * server, the clinic's signing key registered in the cloud.
 */
export async function startClinicStack(person: StackPerson, database = "clinic_stack"): Promise<ClinicStack> {
  const pcLogin = { user: "pc_recepcion", password: "pc-login-secret" };
  const [cloud, clinic] = await Promise.all([startLocalSupabase({ log: () => {} }), startPostgres()]);
  const clinicDb = await clinic.createDatabase(database);
  await applyMigrations(clinicDb);
  const internet = await createLink({ target: { host: "127.0.0.1", port: Number(new URL(cloud.url).port) } });
  const lan = await createLink({ target: { host: "127.0.0.1", port: clinic.port } });
  const personId = (await cloud.createUser(person)).id;
  const profile = { id: personId, full_name: person.name, email: person.email };
  await onDatabase(cloud.dbUrl, (sql) => sql`insert into profiles ${sql(profile)}`);
  const key = await onDatabase(clinicDb, async (sql) => {
    await sql`insert into profiles ${sql(profile)}`;
    await sql.unsafe(
      `create role ${pcLogin.user} login password '${pcLogin.password}' in role centrovision_app`,
    );
    const [row] = await sql<
      { k: { key_id: string; key: string } }[]
    >`select public.cv_clinic_key_export() as k`;
    return row?.k;
  });
  await onDatabase(
    cloud.dbUrl,
    (sql) => sql`select public.cv_clinic_register_key(${key?.key_id ?? ""}, ${key?.key ?? ""})`,
  );
  return {
    cloud,
    clinic,
    clinicDb,
    internet,
    lan,
    personId,
    pcLogin,
    cloudUrl: `http://127.0.0.1:${internet.port}`,
    pcLoginUrl(direct = false) {
      const url = new URL(clinicDb);
      if (!direct) url.host = `127.0.0.1:${lan.port}`;
      url.username = pcLogin.user;
      url.password = pcLogin.password;
      return url.href;
    },
    async stop() {
      await Promise.all([internet.close(), lan.close()]);
      await Promise.all([cloud.stop(), clinic.stop()]);
    },
  };
}
