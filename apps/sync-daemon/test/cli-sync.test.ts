import { randomUUID } from "node:crypto";
import { beforeEach, describe, expect, it } from "vitest";
import { type TestClinic, useTestClinic } from "./support/clinic.js";

const stack = useTestClinic("each");
let clinic: TestClinic;
beforeEach(async () => {
  clinic = stack.current();
});

const cli = stack.cli;

async function branchOnCloud(): Promise<string> {
  const id = randomUUID();
  const tag = id.slice(0, 8).toUpperCase();
  await clinic.cloudSql`insert into branches (id, code, name, address) values (${id}, ${`T-${tag}`}, 'Clínica Roma', 'Av. Álvaro Obregón 121')`;
  return id;
}

async function patientOn(sql: TestClinic["sql"], branchId: string): Promise<string> {
  const id = randomUUID();
  await sql`
    insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
    values (${id}, ${branchId}, 'María José', 'Peña', '1962-07-14', 'female', '33 3615 0000')`;
  return id;
}

describe("init", () => {
  it("migrates, creates the login and registers the node; a second run changes nothing", async () => {
    const first = await cli("init");
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/migrations: applied 0001_ehr_schema\.sql/);
    expect(first.stdout).toContain(`login ${clinic.user}: created in role centrovision_sync`);
    expect(first.stdout).toContain("init done");
    const before =
      await clinic.sql`select name, checksum, applied_at from cv_meta.schema_migrations order by name`;
    const [node] = await clinic.sql<{ node_name: string }[]>`select node_name from cv_sync.node`;
    expect(node?.node_name).toMatch(/^clinic-/);
    const [role] = await clinic.sql<{ verifier: string }[]>`
      select rolpassword as verifier from pg_authid where rolname = ${clinic.user}`;
    expect(role?.verifier).toMatch(/^SCRAM-SHA-256\$4096:/);

    const second = await cli("init");
    expect(second.code).toBe(0);
    expect(second.stdout).toContain("migrations: the database is current");
    expect(second.stdout).toContain("init: nothing to do");
    expect(
      await clinic.sql`select name, checksum, applied_at from cv_meta.schema_migrations order by name`,
    ).toEqual(before);
  });

  it("takes the admin login from the command line, and says what is missing without one", async () => {
    clinic.writeConfig("", { noAdmin: true });
    const without = await cli("init");
    expect(without.code).toBe(78);
    expect(without.stderr).toContain("clinic.admin_url: required by init");
    const password = `${clinic.dir}/admin_password`;
    const flags = await cli("init", "--admin-url", clinic.adminUrl, "--admin-password-file", password);
    expect(flags.code, flags.stderr).toBe(0);
    expect(flags.stdout).toContain("init done");
    const lonely = await cli("init", "--admin-password-file", password);
    expect(lonely.code).toBe(78);
    expect(lonely.stderr).toContain("--admin-url: required with --admin-password-file");
  });
});

describe("once and status", () => {
  it("syncs both ways in one cycle and reports it, as text and JSON", async () => {
    expect((await cli("init")).code).toBe(0);
    const branchId = await branchOnCloud();
    const fromCloud = await patientOn(clinic.cloudSql, branchId);
    const once = await cli("once");
    expect(once.code, `${once.stdout}\n${once.stderr}`).toBe(0);
    expect(once.stdout).toMatch(/^in-sync: pending up 0, down 0/);
    // One run's summary, not a daemon's lines.
    expect(once.stderr).not.toMatch(/sync daemon started|sync daemon stopped|sync cycle done|retrying in/);
    const [arrived] = await clinic.sql`select id from patients where id = ${fromCloud}`;
    expect(arrived).toBeDefined();

    const fromClinic = await patientOn(clinic.sql, branchId);
    const status = await cli("status", "--json");
    expect(status.code).toBe(0);
    const report = JSON.parse(status.stdout);
    expect(report).toMatchObject({ daemonRunning: false, mode: "stopped", pendingUp: 1, conflictsOpen: 0 });
    expect(typeof report.clockSkewMs).toBe("number");
    expect((await cli("once")).code).toBe(0);
    const [pushed] = await clinic.cloudSql`select id from patients where id = ${fromClinic}`;
    expect(pushed).toBeDefined();
    const text = await cli("status");
    expect(text.stdout).toMatch(/pending\s+up 0, down 0/);
    expect(text.stdout).toContain("daemon not running");
  });

  it("runs one cycle and reports it when the identity copy outlasts the interval", async () => {
    expect((await cli("init")).code).toBe(0);
    await clinic.sql.unsafe(`alter database "${clinic.database}" set track_functions = 'pl'`);
    await clinic.sql`select pg_stat_reset()`;
    // The identity copy waits for the disabled users' table five intervals (1 s) long.
    const held = clinic.sql.begin(async (tx) => {
      await tx`lock table cv_auth.disabled_users in access exclusive mode`;
      await new Promise((resolve) => setTimeout(resolve, 5_000));
    });
    const once = await cli("once");
    await held;
    expect(once.code, `${once.stdout}\n${once.stderr}`).toBe(0);
    expect(once.stdout).toMatch(/^in-sync: pending up 0, down 0/);
    // Every cycle reads the clinic's pending count once; the run's backends flushed their counts on exit.
    const [pending] = await clinic.sql<{ calls: string }[]>`
      select calls from pg_stat_user_functions where funcname = 'cv_sync_pending'`;
    expect(pending?.calls).toBe("1");
  });

  it("exits 1 with a clear message when the clinic database refuses the password", async () => {
    expect((await cli("init")).code).toBe(0);
    clinic.writeConfig("", { password: "wrong-password" });
    const once = await cli("once");
    expect(once.code).toBe(1);
    expect(once.stdout).toContain("the login was refused (SQLSTATE 28P01)");
    expect(once.stdout).toContain("check [clinic] url (user) and password_file");
    expect(once.stdout + once.stderr).not.toContain("wrong-password");
    // `once` does not retry, and does not say it will.
    expect(once.stderr).not.toMatch(/retrying in|sync daemon/);
    // Without a daemon, a node that refuses the login makes `status` fail too.
    const status = await cli("status");
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(/^clinic\s+unauthorized: /m);
  });
});
