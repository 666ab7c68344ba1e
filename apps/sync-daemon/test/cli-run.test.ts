import { PRODUCT_VERSION } from "@centrovision/core";
import { freePort } from "@centrovision/testkit";
import { beforeEach, describe, expect, it } from "vitest";
import { runCli, spawnCli } from "./support/cli.js";
import { type TestClinic, useTestClinic } from "./support/clinic.js";

const stack = useTestClinic("each");
let clinic: TestClinic;
beforeEach(async () => {
  clinic = stack.current();
  expect((await runCli(["--config", clinic.configPath, "init"])).code).toBe(0);
});

const get = async (port: number, path: string) => {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, type: response.headers.get("content-type"), text: await response.text() };
};

describe("run", () => {
  it("serves /healthz, /readyz, /status and /metrics, and stops on SIGTERM with exit 0", async () => {
    const port = await freePort();
    clinic.writeConfig("", { httpPort: port });
    const daemon = spawnCli(["--config", clinic.configPath, "run"]);
    await daemon.waitForLog((line) => line.msg === "sync cycle done");

    expect((await get(port, "/healthz")).status).toBe(200);
    const ready = await get(port, "/readyz");
    expect(ready.status, ready.text).toBe(200);
    const status = JSON.parse((await get(port, "/status")).text);
    expect(status).toMatchObject({ mode: "in-sync", pendingUp: 0, pendingDown: 0, consecutiveFailures: 0 });
    expect(status.node).toMatch(/^clinic-/);
    expect(status.version).toBe(PRODUCT_VERSION);
    // The first cycle that drained both ways purged both logs: the cloud's with the node credential.
    expect(status.changeLog).toMatchObject({
      clinic: { entries: expect.any(Number), error: null },
      cloud: { entries: expect.any(Number), error: null },
    });
    const metrics = await get(port, "/metrics");
    expect(metrics.type).toContain("text/plain");
    expect(metrics.text).toMatch(/centrovision_sync_cycles_total\{result="success"\} [1-9]/);
    expect(metrics.text).toMatch(/centrovision_sync_change_log_entries\{node="clinic"\} \d+/);
    expect(metrics.text).toMatch(/centrovision_sync_change_log_purged_total\{node="cloud"\} \d+/);
    for (const name of ["rows_total", "lag_seconds", "pending_changes", "conflicts_open", "errors_total"]) {
      expect(metrics.text).toContain(`centrovision_sync_${name}`);
    }
    expect((await get(port, "/nope")).status).toBe(404);

    const cli = await runCli(["--config", clinic.configPath, "status", "--json"]);
    expect(JSON.parse(cli.stdout)).toMatchObject({
      daemonRunning: true,
      mode: expect.stringMatching(/in-sync|syncing/),
    });

    daemon.child.kill("SIGTERM");
    const result = await daemon.done;
    expect(result.code).toBe(0);
    expect(daemon.logs.some((line) => line.msg === "sync daemon stopped")).toBe(true);
    expect(result.stderr).not.toMatch(/pw-|eyJ/);
  });

  it("refuses a clinic database a newer version migrated, with exit 78 and what to install; doctor says the same", async () => {
    await clinic.sql`update cv_meta.product set version = '99.0.0'`;
    for (const command of ["run", "once"]) {
      const result = await runCli(["--config", clinic.configPath, command]);
      expect(result.code, result.stderr).toBe(78);
      expect(result.stderr).toContain(
        `centrovision-sync: [core] this database was migrated by CentroVision 99.0.0; this build is ${PRODUCT_VERSION} and would run older code against it: install version 99.0.0 or newer`,
      );
    }
    const doctor = await runCli(["--config", clinic.configPath, "doctor"]);
    expect(doctor.stdout).toMatch(/migrations.*migrated by CentroVision 99\.0\.0/);
    expect(doctor.stdout).toContain("upgrade centrovision-sync");
    // init (a newer build's job here) refuses as well, and leaves the database as it was.
    const init = await runCli(["--config", clinic.configPath, "init"]);
    expect(init.code).toBe(78);
    expect(await clinic.sql`select version from cv_meta.product`).toEqual([{ version: "99.0.0" }]);
  });

  it("says clearly that the password is wrong, retries with a growing backoff, and exits 0 on SIGTERM", async () => {
    clinic.writeConfig("", { password: "wrong-password" });
    const daemon = spawnCli(["--config", clinic.configPath, "run"]);
    const failed = (n: number) => (line: Record<string, unknown>) =>
      line.msg !== undefined && String(line.msg).startsWith("sync cycle failed") && line.failures === n;
    const first = await daemon.waitForLog(failed(1));
    const third = await daemon.waitForLog(failed(3));
    expect(first.msg).toContain("the login was refused (SQLSTATE 28P01)");
    expect(first.msg).toContain("check [clinic] url (user) and password_file");
    expect(first.code).toBe("unauthorized");
    expect(third.retryInS as number).toBeGreaterThan(first.retryInS as number);
    daemon.child.kill("SIGTERM");
    const result = await daemon.done;
    expect(result.code).toBe(0);
    expect(result.stderr).not.toContain("wrong-password");
  });

  it("finishes the page in flight on SIGTERM mid-sync: nothing half-done, nothing lost", async () => {
    // A long initial copy: pages of 50 rows of this test's own branch.
    const [branch] = await clinic.cloudSql<{ id: string }[]>`
      insert into branches (id, code, name, address)
      values (gen_random_uuid(), 'SIG-' || upper(substr(md5(random()::text), 1, 8)), 'Clínica Sur', 'Calz. de Tlalpan 1')
      returning id`;
    await clinic.cloudSql`
      insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
      select gen_random_uuid(), ${branch?.id ?? ""}, 'Paciente', 'Prueba ' || i, '1970-01-01', 'unknown', '55 0000 0000'
      from generate_series(1, 3000) i`;
    clinic.writeConfig("", { sync: "snapshot_page_size = 50\npage_size = 50" });
    const daemon = spawnCli(["--config", clinic.configPath, "run"]);
    await daemon.waitForLog((line) => String(line.msg ?? "").startsWith("sync progress"));
    daemon.child.kill("SIGTERM");
    const result = await daemon.done;
    expect(result.code, result.stderr).toBe(0);
    const count = async (sql: TestClinic["sql"]) =>
      Number(
        (await sql`select count(*)::int as n from patients where branch_id = ${branch?.id ?? ""}`)[0]?.n,
      );
    const copied = await count(clinic.sql);
    expect(copied).toBeLessThan(3000);

    const once = await runCli(["--config", clinic.configPath, "once"]);
    expect(once.code, once.stdout + once.stderr).toBe(0);
    expect(await count(clinic.sql)).toBe(3000);
    const sum = (sql: TestClinic["sql"]) =>
      sql`select md5(string_agg(to_jsonb(p)::text, ',' order by id)) as sum from patients p where branch_id = ${branch?.id ?? ""}`;
    expect(await sum(clinic.sql)).toEqual(await sum(clinic.cloudSql));
    const [dupes] = await clinic.sql`
      select count(*)::int as n from (
        select 1 from cv_sync.change_log where op <> 'rescope'
      group by table_name, row_id, version having count(*) > 1) d`;
    expect(dupes?.n).toBe(0);
    await clinic.cloudSql`delete from patients where branch_id = ${branch?.id ?? ""}`;
  });
});
