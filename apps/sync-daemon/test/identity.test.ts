import { randomUUID } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  asClinicPerson,
  freePort,
  MIGRATIONS_DIR,
  runningPostgres,
  startLocalSupabase,
} from "@centrovision/testkit";
import { createClient } from "@supabase/supabase-js";
import postgres from "postgres";
import { afterEach, beforeEach, describe, expect, inject, it, vi } from "vitest";
import WebSocket from "ws";
import { runCli, spawnCli } from "./support/cli.js";
import { createTestNode, type TestClinic, useTestClinic } from "./support/clinic.js";
import { cloudMigrate } from "./support/cloud.js";

const stack = useTestClinic("each");
let clinic: TestClinic;
const cleanups: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  clinic = stack.current();
  expect((await runCli(["--config", clinic.configPath, "init"])).code).toBe(0);
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const cli = (...args: string[]) => runCli(["--config", clinic.configPath, ...args]);

/** supabase-js for a test, without a stored session (Node 20: realtime needs a WebSocket). */
const supabase = (url: string, key: string) =>
  createClient(url, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: WebSocket as never },
  });

async function clinicKey(): Promise<{ keyId: string; hex: string }> {
  const [row] = await clinic.sql<{ key_id: string; hex: string }[]>`
    select key_id, encode(key, 'hex') as hex from cv_auth.signing_key`;
  if (!row) throw new Error("the clinic has no signing key");
  return { keyId: row.key_id, hex: row.hex };
}

/** The clinic server's node id. */
async function clinicNodeId(): Promise<string> {
  const [row] = await clinic.sql<{ node_id: string }[]>`select node_id from cv_sync.node`;
  if (!row) throw new Error("the clinic server has no node id");
  return row.node_id;
}

/** The audit chain of `node` as `sql` holds it: the sealed events' positions and hashes. */
function sealedChain(sql: postgres.Sql, node: string) {
  return sql<{ position: string; hash: string }[]>`
    select position, encode(hash, 'hex') as hash from cv_audit.events
    where node_id = ${node} and position is not null order by position`;
}

/** A connection of `url` as the person of `token` (or as the login alone); ended after the test. */
function connect(url: string, token?: string): postgres.Sql {
  const sql = postgres(url, {
    max: 1,
    onnotice: () => {},
    ...(token !== undefined && { connection: asClinicPerson(token) }),
  });
  cleanups.push(() => sql.end());
  return sql;
}

/** A local Supabase project with the sql/ migrations before `migration` only; stopped after the test. */
async function projectBefore(migration: string) {
  const partial = mkdtempSync(join(tmpdir(), `cv-without-${migration}-`));
  for (const file of readdirSync(MIGRATIONS_DIR).filter((name) => /^\d{4}_.*\.sql$/.test(name))) {
    if (file < migration) copyFileSync(join(MIGRATIONS_DIR, file), join(partial, file));
  }
  // The pages' format (row texts, sets of chunks) is this daemon's whatever the cloud lacks: a
  // cloud without it is told to migrate before anything else (engine-initial-sync.test.ts).
  mkdirSync(join(partial, "functions"));
  for (const file of ["06_snapshot.sql", "10_pull.sql"]) {
    copyFileSync(join(MIGRATIONS_DIR, "functions", file), join(partial, "functions", file));
  }
  const project = await startLocalSupabase({
    postgres: runningPostgres(inject("postgresUrl")),
    migrationsDir: partial,
    log: () => {},
  });
  cleanups.push(async () => {
    await project.stop();
    rmSync(partial, { recursive: true, force: true });
  });
  return project;
}

describe("the clinic's identity, copied by the daemon", () => {
  it("registers the clinic key so the cloud mints clinic sessions; a ban reaches the clinic with the next cycle, and so does the unban", async () => {
    const cloud = inject("cloud");
    const admin = supabase(cloud.url, cloud.serviceRoleKey);
    const email = `dra.${randomUUID().slice(0, 8)}@centrovision.test`;
    const password = `Pw-${randomUUID()}`;
    const created = await admin.auth.admin.createUser({ email, password, email_confirm: true });
    expect(created.error).toBeNull();
    const userId = created.data.user?.id as string;
    cleanups.push(() => admin.auth.admin.deleteUser(userId));
    const { keyId, hex } = await clinicKey();

    // A change made in the cloud is an audit event there, for the pass to seal.
    await clinic.cloudSql`
      insert into branches (id, code, name, address)
      values (${randomUUID()}, ${`AUD${randomUUID().slice(0, 6).toUpperCase()}`}, 'Auditoría', 'Av. Reforma 1')`;
    const first = await cli("once");
    expect(first.code, first.stdout + first.stderr).toBe(0);
    expect(first.stdout).toMatch(
      /^identity: clinic key registered, \d+ disabled user\(s\) copied \S+, \d+ audit event\(s\) sealed /m,
    );
    // The pass sealed both audit trails: nothing committed before it is left out of either chain
    // (the cloud's holds the branch made there; the clinic server's had no change of its own yet).
    for (const [where, sql] of [
      ["clinic", clinic.sql],
      ["cloud", clinic.cloudSql],
    ] as const) {
      const [trail] = await sql<
        { v: { ok: boolean; unsealed: number } }[]
      >`select public.cv_audit_verify() as v`;
      expect(trail?.v, where).toMatchObject({ ok: true, unsealed: 0 });
    }
    const [cloudTrail] = await clinic.cloudSql<
      { v: { sealed: number } }[]
    >`select public.cv_audit_verify() as v`;
    expect(cloudTrail?.v.sealed).toBeGreaterThan(0);
    for (const secret of [hex, cloud.serviceRoleKey, clinic.node.password])
      expect(first.stdout + first.stderr).not.toContain(secret);
    const [registered] =
      await clinic.cloudSql`select key_id from cv_auth.clinic_keys where key_id = ${keyId}`;
    expect(registered).toBeDefined();

    // A change made on the clinic server: sealed there, then handed to the cloud by the next pass,
    // which holds the clinic's chain hash for hash.
    await clinic.sql`
      insert into branches (id, code, name, address)
      values (${randomUUID()}, ${`LOC${randomUUID().slice(0, 6).toUpperCase()}`}, 'Local', 'Calle 5')`;
    expect((await cli("once")).code).toBe(0);
    const clinicNode = await clinicNodeId();
    const chainOf = (sql: postgres.Sql) => sealedChain(sql, clinicNode);
    const [onClinic, inCloud] = [await chainOf(clinic.sql), await chainOf(clinic.cloudSql)];
    expect(onClinic.length).toBeGreaterThan(0);
    expect(inCloud).toEqual(onClinic);
    const [held] = await clinic.cloudSql<
      { v: { ok: boolean } }[]
    >`select public.cv_audit_verify(${clinicNode}) as v`;
    expect(held?.v).toMatchObject({ ok: true });

    // A person signs in online and gets a clinic session, which the clinic server verifies.
    const person = supabase(cloud.url, cloud.anonKey);
    expect((await person.auth.signInWithPassword({ email, password })).error).toBeNull();
    const minted = await person.rpc("cv_clinic_session", { p_key_id: keyId });
    expect(minted.error).toBeNull();
    const token = (minted.data as { token: string }).token;
    const pc = await clinic.pcLogin();
    const asPerson = connect(pc, token);
    const whoAmI = () => asPerson`select auth.uid() as uid`.then(([row]) => row?.uid);
    expect(await whoAmI()).toBe(userId);
    await asPerson`select cv_auth.enroll(${password})`;
    const atTheDoor = connect(pc);
    const signIn = async () =>
      (
        await atTheDoor<
          { r: { ok: boolean; reason?: string } }[]
        >`select cv_auth.sign_in(${email}, ${password}) as r`
      )[0]?.r;
    expect(await signIn()).toMatchObject({ ok: true });

    expect((await admin.auth.admin.updateUserById(userId, { ban_duration: "876000h" })).error).toBeNull();
    expect(await whoAmI()).toBe(userId); // the clinic learns of it with the next cycle
    expect((await cli("once")).code).toBe(0);
    await expect(whoAmI()).rejects.toMatchObject({ code: "CV010", message: "this user is disabled" });
    expect(await signIn()).toEqual({ ok: false, reason: "disabled" });

    expect((await admin.auth.admin.updateUserById(userId, { ban_duration: "none" })).error).toBeNull();
    expect((await cli("once")).code).toBe(0);
    expect(await whoAmI()).toBe(userId);
    expect(await signIn()).toMatchObject({ ok: true });
  });

  it("a user removed from a branch in the cloud no longer sees that branch's patients on the clinic server after one cycle", async () => {
    const cloud = inject("cloud");
    const admin = supabase(cloud.url, cloud.serviceRoleKey);
    const email = `recepcion.${randomUUID().slice(0, 8)}@centrovision.test`;
    const password = `Pw-${randomUUID()}`;
    const created = await admin.auth.admin.createUser({ email, password, email_confirm: true });
    const userId = created.data.user?.id as string;
    cleanups.push(() => admin.auth.admin.deleteUser(userId));
    const [branch, membership, patient] = [randomUUID(), randomUUID(), randomUUID()];
    const tag = branch.slice(0, 8).toUpperCase();
    await clinic.cloudSql.begin(async (tx) => {
      await tx`insert into branches (id, code, name, address) values (${branch}, ${`RM-${tag}`}, 'Roma', 'Av. Álvaro Obregón 121')`;
      await tx`insert into profiles (id, full_name, email) values (${userId}, 'Recepción Roma', ${email})`;
      await tx`insert into user_branches (id, user_id, branch_id) values (${membership}, ${userId}, ${branch})`;
      await tx`insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
        values (${patient}, ${branch}, 'José', 'Núñez', '1950-01-31', 'male', '55 1234 5678')`;
    });
    expect((await cli("once")).code).toBe(0);
    const { keyId } = await clinicKey();
    const person = supabase(cloud.url, cloud.anonKey);
    expect((await person.auth.signInWithPassword({ email, password })).error).toBeNull();
    const minted = await person.rpc("cv_clinic_session", { p_key_id: keyId });
    const asPerson = connect(await clinic.pcLogin(), (minted.data as { token: string }).token);
    const seen = async () =>
      (
        await asPerson<{ n: number }[]>`select count(*)::int as n from patients where branch_id = ${branch}`
      )[0]?.n;
    expect(await seen()).toBe(1);

    await clinic.cloudSql`delete from user_branches where id = ${membership}`;
    expect(await seen()).toBe(1); // the clinic learns of it with the next cycle
    expect((await cli("once")).code).toBe(0);
    expect(await seen()).toBe(0);
  });

  it("a running daemon hands the clinic server's audit events to the cloud after idle passes that shipped nothing", async () => {
    const port = await freePort();
    clinic.writeConfig("", { httpPort: port, sync: "quiet_interval_ms = 1000" });
    const daemon = spawnCli(["--config", clinic.configPath, "run"]);
    cleanups.push(async () => {
      daemon.child.kill("SIGTERM");
      await daemon.done;
    });
    const identity = async () =>
      (
        (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as {
          identity: { auditSealed: number | null; auditSealedAt: string | null; auditInCloud: number | null };
        }
      ).identity;
    const clinicNode = await clinicNodeId();
    const chainOf = (sql: postgres.Sql) => sealedChain(sql, clinicNode);
    /** The daemon's identity status once `ok` holds for it (up to 20 s). */
    const until = (ok: (status: Awaited<ReturnType<typeof identity>>) => boolean) =>
      vi.waitFor(
        async () => {
          const status = await identity();
          expect(ok(status), JSON.stringify(status)).toBe(true);
          return status;
        },
        { timeout: 20_000, interval: 200 },
      );

    // Passes with nothing to chain on the clinic server, after the first shipment.
    const shipped = await until((status) => status.auditInCloud !== null);
    const idle = await until(
      (status) => status.auditSealedAt !== shipped.auditSealedAt && status.auditSealed === 0,
    );
    await until((status) => status.auditSealedAt !== idle.auditSealedAt);

    // A change made on the clinic server now is chained there and reaches the cloud hash for hash.
    await clinic.sql`
      insert into branches (id, code, name, address)
      values (${randomUUID()}, ${`IDL${randomUUID().slice(0, 6).toUpperCase()}`}, 'Tras la calma', 'Calle 9')`;
    const onClinic = await vi.waitFor(
      async () => {
        const chain = await chainOf(clinic.sql);
        const [unsealed] = await clinic.sql<{ n: number }[]>`
          select count(*)::int as n from cv_audit.events where node_id = ${clinicNode} and position is null`;
        expect(unsealed?.n, "audit events the clinic server has not sealed").toBe(0);
        expect(Number(chain.at(-1)?.position)).toBeGreaterThan(shipped.auditInCloud ?? 0);
        return chain;
      },
      { timeout: 20_000, interval: 200 },
    );
    const last = Number(onClinic.at(-1)?.position);
    await until((status) => status.auditInCloud === last);
    expect(await chainOf(clinic.cloudSql)).toEqual(onClinic);
  });

  it("keeps syncing while the cloud lacks sql/0011, says what to do, and registers the key within the next cycles once it has it", async () => {
    const project = await projectBefore("0011");
    const port = await freePort();
    const onProject = await createTestNode(project, `clinic-${randomUUID().slice(0, 8)}`);
    clinic.writeConfig("", { httpPort: port, cloud: onProject });
    const { keyId, hex } = await clinicKey();
    const daemon = spawnCli(["--config", clinic.configPath, "run"]);
    cleanups.push(async () => {
      daemon.child.kill("SIGTERM");
      await daemon.done;
    });
    const status = async () =>
      (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as Record<string, unknown>;

    const failed = await daemon.waitForLog((line) =>
      String(line.msg).startsWith("clinic identity copy failed"),
    );
    expect(failed.code).toBe("invalid_config");
    expect(failed.msg).toContain(
      "has no matching public.cv_disabled_users (PGRST202); apply the sql/ migrations there",
    );
    await daemon.waitForLog((line) => line.msg === "sync cycle done");
    expect(await status()).toMatchObject({
      consecutiveFailures: 0,
      lastError: null,
      identity: { keyRegistered: false, disabledUsers: null, lastError: { code: "invalid_config" } },
    });

    const migrated = await cloudMigrate(project.postgresUrl);
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(migrated.stdout).toContain("0011_identity.sql");
    await project.reloadSchema();
    const done = await daemon.waitForLog((line) => line.msg === "clinic key registered with the cloud");
    expect(done.keyId).toBe(keyId);
    const cloudSql = connect(project.dbUrl);
    const [registered] = await cloudSql`select key_id from cv_auth.clinic_keys where key_id = ${keyId}`;
    expect(registered).toBeDefined();
    // The pass that registered the key may have begun before the migration (its copy of the
    // disabled users failed then): this line comes only from a pass with no error.
    await daemon.waitForLog(
      (line) => line.msg === "disabled users copied from the cloud to the clinic server",
    );
    expect(await status()).toMatchObject({
      consecutiveFailures: 0,
      lastError: null,
      identity: { keyRegistered: true, keyId, disabledUsers: 0, lastError: null },
    });

    daemon.child.kill("SIGTERM");
    const result = await daemon.done;
    expect(result.code).toBe(0);
    for (const secret of [hex, project.serviceRoleKey, onProject.node.password])
      expect(result.stderr).not.toContain(secret);
  });

  it("registers the key and says so while the cloud lacks sql/0012, whose audit steps fail beside it", async () => {
    const project = await projectBefore("0012");
    const port = await freePort();
    const onProject = await createTestNode(project, `clinic-${randomUUID().slice(0, 8)}`);
    clinic.writeConfig("", { httpPort: port, cloud: onProject });
    const { keyId } = await clinicKey();
    const daemon = spawnCli(["--config", clinic.configPath, "run"]);
    cleanups.push(async () => {
      daemon.child.kill("SIGTERM");
      await daemon.done;
    });

    const done = await daemon.waitForLog((line) => line.msg === "clinic key registered with the cloud");
    expect(done.keyId).toBe(keyId);
    const failed = await daemon.waitForLog((line) =>
      String(line.msg).startsWith("clinic identity copy failed"),
    );
    expect(failed.msg).toContain("cv_audit_seal");
    await daemon.waitForLog((line) => line.msg === "sync cycle done");
    const status = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as Record<string, unknown>;
    expect(status).toMatchObject({
      consecutiveFailures: 0,
      identity: { keyRegistered: true, keyId, disabledUsers: 0, lastError: { code: "invalid_config" } },
    });
  });
});
