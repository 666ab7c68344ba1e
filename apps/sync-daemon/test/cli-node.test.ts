import { randomUUID } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, runningPostgres, startLocalSupabase } from "@centrovision/testkit";
import postgres from "postgres";
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
import { runCli, spawnCli } from "./support/cli.js";
import { createTestNode, type TestClinic, useTestClinic } from "./support/clinic.js";

const stack = useTestClinic("each");
let clinic: TestClinic;
const cleanups: (() => Promise<unknown>)[] = [];
beforeEach(() => {
  clinic = stack.current();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const cli = (...args: string[]) => runCli(["--config", clinic.configPath, ...args]);

function secretFile(name: string, value: string): string {
  const path = join(clinic.dir, name);
  writeFileSync(path, `${value}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
}

/** The clinic's config as an IT person starts it: no node_email, the password file still to come. */
function configWithoutNode(): void {
  const text = readFileSync(clinic.configPath, "utf8")
    .replace(/^node_email = .*\n/m, "")
    .replace('node_password_file = "node_password"', 'node_password_file = "secrets/node_password"');
  mkdirSync(join(clinic.dir, "secrets"), { mode: 0o700 });
  writeFileSync(clinic.configPath, text, { mode: 0o600 });
}

/** Two rows, one written on each side; true when one cycle carried both across. */
async function syncsBothWays(): Promise<void> {
  const branch = randomUUID();
  const [fromCloud, fromClinic] = [randomUUID(), randomUUID()];
  await clinic.cloudSql`insert into branches (id, code, name, address)
    values (${branch}, ${`N-${branch.slice(0, 8).toUpperCase()}`}, 'Clínica Roma', 'Av. Álvaro Obregón 121')`;
  await clinic.cloudSql`insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
    values (${fromCloud}, ${branch}, 'María José', 'Peña', '1962-07-14', 'female', '33 3615 0000')`;
  const first = await cli("once");
  expect(first.code, first.stdout + first.stderr).toBe(0);
  await clinic.sql`insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
    values (${fromClinic}, ${branch}, 'José', 'Núñez', '1950-01-31', 'male', '55 1234 5678')`;
  const second = await cli("once");
  expect(second.code, second.stdout + second.stderr).toBe(0);
  expect(await clinic.sql`select id from patients where id = ${fromCloud}`).toHaveLength(1);
  expect(await clinic.cloudSql`select id from patients where id = ${fromClinic}`).toHaveLength(1);
}

describe("node create", () => {
  it("makes a node credential the daemon syncs both ways with; the service key is stored nowhere", async () => {
    const cloud = inject("cloud");
    configWithoutNode();
    const keyFile = secretFile("service_role_key", cloud.serviceRoleKey);
    const name = `Clínica Roma ${randomUUID().slice(0, 8)}`;
    const created = await runCli([
      "node",
      "create",
      "--name",
      name,
      "--service-role-key-file",
      keyFile,
      "--all-branches",
      "--config",
      clinic.configPath,
    ]);
    expect(created.code, created.stderr).toBe(0);
    const email =
      /^node_email = "(node-clinica-roma-[0-9a-f]{8}-[0-9a-f]{8}@nodes\.centrovision\.invalid)"$/m.exec(
        created.stdout,
      )?.[1];
    expect(email, created.stdout).toBeDefined();
    expect(created.stdout).toContain(`registered as the node of clinic "${name}", holding every branch`);
    const passwordFile = join(clinic.dir, "secrets/node_password");
    expect(statSync(passwordFile).mode & 0o777).toBe(0o600);
    const password = readFileSync(passwordFile, "utf8").trim();
    expect(password.length).toBeGreaterThanOrEqual(40);
    expect(created.stdout + created.stderr).not.toContain(password);
    expect(created.stdout + created.stderr).not.toContain(cloud.serviceRoleKey);
    const [user] = await clinic.cloudSql<{ id: string; meta: Record<string, unknown>; confirmed: boolean }[]>`
      select id, raw_app_meta_data as meta, email_confirmed_at is not null as confirmed
      from auth.users where email = ${email ?? ""}`;
    expect(user).toMatchObject({ meta: { centrovision_node: name }, confirmed: true });
    expect(
      await clinic.cloudSql`select 1 from cv_sync.clinic_nodes where user_id = ${user?.id ?? ""}`,
    ).toHaveLength(1);
    expect(readFileSync(clinic.configPath, "utf8") + readFileSync(passwordFile, "utf8")).not.toContain(
      cloud.serviceRoleKey,
    );

    writeFileSync(
      clinic.configPath,
      readFileSync(clinic.configPath, "utf8").replace("[cloud]\n", `[cloud]\nnode_email = "${email}"\n`),
    );
    expect((await cli("init")).code).toBe(0);
    await syncsBothWays();
    const doctor = await cli("doctor");
    expect(doctor.stdout).toContain(`answers node ${email}`);

    // Again: the password file is there, so only --force replaces the credential (a lost or
    // stolen password): the new one takes the name, the old user is gone, and the sync goes on.
    const again = await cli(
      "node",
      "create",
      "--name",
      name,
      "--service-role-key-file",
      keyFile,
      "--all-branches",
    );
    expect(again.code).toBe(78);
    expect(again.stderr).toMatch(
      /node_password exists: this server has a node credential already; add --force/,
    );
    expect(readFileSync(passwordFile, "utf8").trim()).toBe(password);
    const replaced = await cli(
      "node",
      "create",
      "--name",
      name,
      "--service-role-key-file",
      keyFile,
      "--all-branches",
      "--force",
    );
    expect(replaced.code).toBe(0);
    const newEmail = /node_email = "([^"]+)"/.exec(replaced.stdout)?.[1] ?? "";
    expect(newEmail).not.toBe(email);
    expect(readFileSync(passwordFile, "utf8").trim()).not.toBe(password);
    const users = await clinic.cloudSql<{ email: string }[]>`
      select email from auth.users where raw_app_meta_data ->> 'centrovision_node' = ${name}`;
    expect(users.map((u) => u.email)).toEqual([newEmail]);
    writeFileSync(clinic.configPath, readFileSync(clinic.configPath, "utf8").replace(email ?? "", newEmail));
    await syncsBothWays();
  });

  it("says clearly what is wrong: the key file, the key, the cloud", async () => {
    configWithoutNode();
    const name = `Clínica ${randomUUID().slice(0, 8)}`;
    const create = (keyFile: string, ...branches: string[]) =>
      cli(
        "node",
        "create",
        "--name",
        name,
        "--service-role-key-file",
        keyFile,
        ...(branches.length > 0 ? branches : ["--all-branches"]),
      );
    const missing = await create(join(clinic.dir, "nope"));
    expect(missing.code).toBe(78);
    expect(missing.stderr).toMatch(/--service-role-key-file: cannot read .*nope \(ENOENT\)/);
    const open = secretFile("open_key", "x");
    chmodSync(open, 0o644);
    expect((await create(open)).stderr).toMatch(/open_key is readable by others \(mode 0644\)/);
    const key = secretFile("key", inject("cloud").serviceRoleKey);
    const noBranch = await cli("node", "create", "--name", "  ", "--service-role-key-file", key);
    expect(noBranch.code).toBe(78);
    expect(noBranch.stderr).toMatch(
      /--name: required.*\n?.*--branch: required: each branch this clinic server holds/s,
    );
    const both = await create(key, "--branch", "Roma", "--all-branches");
    expect(both.stderr).toMatch(/--branch and --all-branches exclude each other/);
    const tag = randomUUID().slice(0, 8);
    const [branch] = await clinic.cloudSql<{ name: string }[]>`
      insert into public.branches (id, code, name, address)
      values (gen_random_uuid(), ${`RN-${tag.toUpperCase()}`}, ${`Roma Norte ${tag}`}, 'Calle 1') returning name`;
    const unknown = await create(key, "--branch", "Nowhere", "--branch", branch?.name.toUpperCase() ?? "");
    expect(unknown.code).toBe(78);
    expect(unknown.stderr).toMatch(
      /--branch: no branch "Nowhere" in the cloud; its branches are: .*"Roma Norte/,
    );
    expect(
      await clinic.cloudSql`select 1 from auth.users where raw_app_meta_data ->> 'centrovision_node' = ${name}`,
    ).toHaveLength(0);
    const wrong = await create(secretFile("wrong_key", "not-the-service-key"));
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/refused the service-role key \(HTTP 40[13]\): copy it again/);
    const port = await freePort();
    writeFileSync(
      clinic.configPath,
      readFileSync(clinic.configPath, "utf8").replace(
        /^url = "http:\/\/127\.0\.0\.1:\d+"/m,
        `url = "http://127.0.0.1:${port}"`,
      ),
    );
    const away = await create(key);
    expect(away.code).toBe(1);
    expect(away.stderr).toMatch(
      /cannot reach cloud \(127\.0\.0\.1:\d+\) \(ECONNREFUSED\): check the internet connection/,
    );
  });
});

describe("the daemon's node session", () => {
  it("signs in again when its sessions are signed out and the token expires, and keeps syncing", async () => {
    // Tokens of a few seconds: supabase-js refreshes before every call, so a revoked refresh
    // token is found at once and the session is dropped when the access token runs out.
    const project = await startLocalSupabase({
      postgres: runningPostgres(inject("postgresUrl")),
      jwtExpirySeconds: 4,
      refreshTokenReuseIntervalSeconds: 0,
      log: () => {},
    });
    cleanups.push(() => project.stop());
    const onProject = await createTestNode(project, `clinic-${randomUUID().slice(0, 8)}`);
    const port = await freePort();
    clinic.writeConfig("", { httpPort: port, cloud: onProject });
    expect((await cli("init")).code).toBe(0);
    const daemon = spawnCli(["--config", clinic.configPath, "run"]);
    cleanups.push(async () => {
      daemon.child.kill("SIGTERM");
      await daemon.done;
    });
    await daemon.waitForLog((line) => line.msg === "sync cycle done");
    const cloudSql = postgres(project.dbUrl, { max: 1, onnotice: () => {} });
    cleanups.push(() => cloudSql.end());
    const sessions = async () =>
      (
        await cloudSql<{ n: number }[]>`
          select count(*)::int as n from auth.sessions s join auth.users u on u.id = s.user_id
          where u.email = ${onProject.node.email}`
      )[0]?.n;
    expect(await sessions()).toBeGreaterThan(0);

    // Sign every session of the node out, as `POST /auth/v1/logout?scope=global` does.
    const signedIn = await fetch(`${project.url}/auth/v1/token?grant_type=password`, {
      method: "POST",
      headers: { apikey: project.anonKey, "content-type": "application/json" },
      body: JSON.stringify({ email: onProject.node.email, password: onProject.node.password }),
    });
    const { access_token: token } = (await signedIn.json()) as { access_token: string };
    const out = await fetch(`${project.url}/auth/v1/logout?scope=global`, {
      method: "POST",
      headers: { apikey: project.anonKey, authorization: `Bearer ${token}` },
    });
    expect(out.status).toBe(204);
    expect(await sessions()).toBe(0);

    const signedOut = daemon.logs.length;
    const nextCycle = () => {
      const seen = daemon.logs.length;
      return daemon.waitForLog((line) => line.msg === "sync cycle done" && daemon.logs.indexOf(line) >= seen);
    };
    // The access token runs out within seconds, its refresh is refused: the daemon signs in again.
    const deadline = Date.now() + 60_000;
    while ((await sessions()) === 0) {
      expect(Date.now(), "the daemon did not sign in again").toBeLessThan(deadline);
      await nextCycle();
    }
    const branch = randomUUID();
    await cloudSql`insert into branches (id, code, name, address)
      values (${branch}, ${`S-${branch.slice(0, 8).toUpperCase()}`}, 'Clínica Sur', 'Calz. de Tlalpan 1')`;
    while ((await clinic.sql`select 1 from branches where id = ${branch}`).length === 0) {
      expect(Date.now(), "the branch did not reach the clinic after the sign-in").toBeLessThan(deadline);
      await nextCycle();
    }
    const failed = daemon.logs.slice(signedOut).filter((line) => String(line.msg).includes("failed"));
    expect(failed).toEqual([]);
    const status = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as Record<string, unknown>;
    expect(status).toMatchObject({ identity: { lastError: null } });
    daemon.child.kill("SIGTERM");
    const result = await daemon.done;
    expect(result.code).toBe(0);
    for (const secret of [onProject.node.password, project.serviceRoleKey, token])
      expect(result.stderr).not.toContain(secret);
  });

  it("a signed-in user that is not a node is refused by the cloud, clearly, in once and status", async () => {
    const cloud = inject("cloud");
    const email = `recepcion.${randomUUID().slice(0, 8)}@centrovision.test`;
    const password = `Pw-${randomUUID()}`;
    const created = await fetch(`${cloud.url}/auth/v1/admin/users`, {
      method: "POST",
      headers: {
        apikey: cloud.serviceRoleKey,
        authorization: `Bearer ${cloud.serviceRoleKey}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ email, password, email_confirm: true }),
    });
    expect(created.status).toBe(200);
    expect((await cli("init")).code).toBe(0);
    clinic.writeConfig("", { node: { email, password } });
    const once = await cli("once");
    expect(once.code).toBe(1);
    expect(once.stdout).toMatch(
      new RegExp(
        `refused cv_\\w+ to ${email.replace(/\./g, "\\.")}: it is not a clinic server's node credential`,
      ),
    );
    expect(once.stdout).toContain("`centrovision-sync node create`");
    const status = await cli("status");
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(/^cloud\s+unauthorized: .*it is not a clinic server's node credential/m);

    clinic.writeConfig("", { node: { email: clinic.node.email, password: "wrong-password" } });
    const wrong = await cli("once");
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toContain(`refused the node credential ${clinic.node.email} (invalid_credentials)`);
    expect(wrong.stdout + wrong.stderr).not.toContain("wrong-password");
  });
});
