import { randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { type TestClinic, useTestClinic } from "./support/clinic.js";

const stack = useTestClinic("all");
let clinic: TestClinic;
beforeAll(async () => {
  clinic = stack.current();
});

const cli = stack.cli;

describe("doctor", () => {
  it("before init: says the login is refused and what to do, exit 1", async () => {
    const result = await cli("doctor");
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /\[FAIL\] clinic database: cv_daemon_\w+@127\.0\.0\.1:\d+\/clinic_\w+ refused the daemon's login/,
    );
    expect(result.stdout).toContain("fix: check [clinic] url (user) and password_file/password_env");
    expect(result.stdout).toMatch(/\[ok {2}\] cloud: 127\.0\.0\.1:\d+ answers/);
  });

  it("after init: every check passes, with a warning for plain http to the local stack", async () => {
    expect((await cli("init")).code).toBe(0);
    const result = await cli("doctor");
    expect(result.code, result.stdout).toBe(0);
    for (const check of [
      "config",
      "clinic database",
      "roles",
      "clinic TLS",
      "migrations",
      "clock",
      "cloud",
      "node",
      "schema",
      "disk",
    ]) {
      expect(result.stdout).toMatch(new RegExp(`\\[ok {2}\\] ${check}:`));
    }
    expect(result.stdout).toContain("[WARN] cloud TLS: plain http to a local stack");
    expect(result.stdout).toContain("All checks passed.");
    const json = JSON.parse((await cli("doctor", "--json")).stdout);
    expect(json.every((check: { status: string }) => check.status !== "fail")).toBe(true);
  });
});

describe("conflicts", () => {
  it("lists, shows and resolves a concurrent edit; the choice reaches the cloud", async () => {
    expect((await cli("init")).code).toBe(0);
    const branch = randomUUID();
    const patient = randomUUID();
    await clinic.cloudSql`insert into branches (id, code, name, address)
      values (${branch}, ${`CF-${branch.slice(0, 8).toUpperCase()}`}, 'Clínica Norte', 'Av. Insurgentes 1')`;
    await clinic.cloudSql`insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
      values (${patient}, ${branch}, 'Ana', 'López', '1950-03-02', 'female', '55 1111 2222')`;
    expect((await cli("once")).code).toBe(0);
    await clinic.sql`update patients set allergies = 'Sulfas (clínica)' where id = ${patient}`;
    await clinic.cloudSql`update patients set allergies = 'Látex (nube)' where id = ${patient}`;
    expect((await cli("once")).code).toBe(0);

    const list = await cli("conflicts", "list", "--json");
    const conflicts = (JSON.parse(list.stdout) as { id: string; rowId: string; winner: string }[]).filter(
      (c) => c.rowId === patient,
    );
    expect(conflicts).toHaveLength(1);
    const conflict = conflicts[0] as { id: string; winner: string };
    expect(list.stdout).not.toContain("Sulfas");
    const text = await cli("conflicts", "list");
    expect(text.stdout).toContain(conflict.id);

    const show = await cli("conflicts", "show", conflict.id);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain("Sulfas (clínica)");
    expect(show.stdout).toContain("Látex (nube)");
    expect(show.stdout).toContain("columns edited on both sides: allergies");

    // Keep the side the policy let lose: the reviewer overrides it.
    const keep = conflict.winner === "local" ? "remote" : "local";
    const kept = keep === "local" ? "Sulfas (clínica)" : "Látex (nube)";
    const resolve = await cli("conflicts", "resolve", conflict.id, "--keep", keep, "--by", "dra.hernandez");
    expect(resolve.code, resolve.stderr).toBe(0);
    expect(resolve.stdout).toMatch(/^resolved /);
    expect((await cli("once")).code).toBe(0);
    const [onClinic] = await clinic.sql`select allergies from patients where id = ${patient}`;
    const [onCloud] = await clinic.cloudSql`select allergies from patients where id = ${patient}`;
    expect(onClinic?.allergies).toBe(kept);
    expect(onCloud?.allergies).toBe(kept);
    const [cloudConflict] =
      await clinic.cloudSql`select status, resolved_by from cv_sync.conflicts where id = ${conflict.id}`;
    expect(cloudConflict).toMatchObject({ status: "resolved" });
    // The name given is kept apart from who the clinic server verified it came from.
    const [resolved] = await clinic.sql<{ resolved_by: string }[]>`
      select resolved_by from cv_sync.conflicts where id = ${conflict.id}`;
    expect(resolved?.resolved_by).toBe(`dra.hernandez (verified: login ${clinic.user})`);

    const missing = await cli("conflicts", "show", randomUUID());
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no conflict .* on the clinic server: see `conflicts list --all`/);
    const bad = await cli("conflicts", "resolve", conflict.id, "--keep", "mine");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("--keep must be local or remote");
  });
});

describe("audit", () => {
  it("lists a patient's events without their data, and verify finds the chain intact, then broken where an event was changed", async () => {
    expect((await cli("init")).code).toBe(0);
    const [branch] = await clinic.sql<{ id: string }[]>`select id from branches limit 1`;
    const patient = randomUUID();
    await clinic.sql`insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
      values (${patient}, ${branch?.id ?? ""}, 'Rosa', 'Méndez', '1962-07-19', 'female', '55 3333 4444')`;
    await clinic.sql`update patients set allergies = 'Yodo' where id = ${patient}`;

    const list = await cli("audit", "list", "--patient", patient, "--json");
    expect(list.code, list.stderr).toBe(0);
    const events = JSON.parse(list.stdout) as { action: string; table: string; patientId: string }[];
    expect(events.map((e) => [e.action, e.table, e.patientId])).toEqual([
      ["insert", "patients", patient],
      ["update", "patients", patient],
    ]);
    const text = await cli("audit", "list", "--patient", patient);
    expect(text.stdout).toContain(patient);
    for (const output of [list.stdout, text.stdout]) {
      for (const data of ["Rosa", "Méndez", "Yodo"]) expect(output).not.toContain(data);
    }
    const bad = await cli("audit", "list", "--patient", "ana", "--since", "ayer", "--limit", "0");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(
      '--patient must be a uuid, got "ana"; --since must be a date or time, e.g. 2026-12-01 or 2026-12-01T08:00:00-06:00; --limit must be a positive integer',
    );

    const intact = await cli("audit", "verify");
    expect(intact.code, intact.stderr).toBe(0);
    expect(intact.stdout).toMatch(/^audit trail intact: \d+ event\(s\), \d+ verified in the chain/);
    // The database's owner, past the trail's own trigger, rewrites what happened.
    await clinic.sql.begin(async (tx) => {
      await tx`alter table cv_audit.events disable trigger cv_audit_guard`;
      await tx`update cv_audit.events set action = 'open' where patient_id = ${patient} and action = 'update'`;
      await tx`alter table cv_audit.events enable trigger cv_audit_guard`;
    });
    const broken = await cli("audit", "verify", "--json");
    expect(broken.code).toBe(1);
    expect(JSON.parse(broken.stdout)).toMatchObject({ ok: false, brokenAt: expect.any(Number) });
  });
});
