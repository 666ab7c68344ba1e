// One clinic of the fleet bench, made as the daemon's own tests make one (test/support/clinic.ts):
// a branch of its own in the cloud with rows of its scope already there, a node credential
// holding only that branch (the code `centrovision-sync node create` runs), its own database on
// the bench's clinic server, migrated by `centrovision-sync init`, and its own `run` process.
import { execFileSync } from "node:child_process";
import { randomInt, randomUUID } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { createNodeCredential } from "../src/node-create.ts";
import { runCli, spawnCli } from "../test/support/cli.ts";
import { alive, treePids } from "./fleet-proc.mjs";

/**
 * The daemon as the service runs it: the built CLI (dist/, built once by `buildDaemon`) with the
 * environment the systemd unit sets (deploy/centrovision-sync.service). From source, every daemon
 * would be a second node under tsx, whose module loader thread keeps waking in some runs: up to
 * about 0.15 CPU-s/min of an idle minute that a clinic's server never spends.
 */
const here = fileURLToPath(new URL("..", import.meta.url));
const AS_SERVICE = { CENTROVISION_SYNC_FROM_SOURCE: "0", ...serviceEnvironment() };

/** The `Environment=` lines of the systemd unit, as an object. */
function serviceEnvironment() {
  const unit = readFileSync(join(here, "deploy/centrovision-sync.service"), "utf8");
  return Object.fromEntries(
    [...unit.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)].map(([, name, value]) => [name, value]),
  );
}

/**
 * Builds the CLI into dist/ (tsup, as `npm run build -w centrovision-sync`), so the bin runs the
 * build; a failed build throws with tsup's own error output.
 */
export function buildDaemon() {
  execFileSync("npx", ["tsup"], { cwd: here, stdio: ["ignore", "ignore", "pipe"] });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/**
 * The config every clinic's daemon runs with: the defaults, except the HTTP port (several daemons
 * on one machine cannot all take 9187). Secrets are files beside it.
 */
export function configText({ name, cloudUrl, anonKey, nodeEmail, clinicUrl, adminUrl }) {
  return `[node]
name = "${name}"

[cloud]
url = "${cloudUrl}"
anon_key = "${anonKey}"
node_email = "${nodeEmail}"
node_password_file = "node_password"

[clinic]
url = "${clinicUrl}"
password_file = "db_password"
admin_url = "${adminUrl}"
admin_password_file = "admin_password"

[http]
port = 0
`;
}

function secret(dir, name, value) {
  writeFileSync(join(dir, name), `${value}\n`, { mode: 0o600 });
  chmodSync(join(dir, name), 0o600);
}

const FIRST_NAMES = [
  "María José",
  "Juan Carlos",
  "Guadalupe",
  "José Luis",
  "Ana Sofía",
  "Miguel Ángel",
  "Rosa",
  "Fernando",
];
const LAST_NAMES = [
  "Hernández",
  "García",
  "Martínez",
  "López",
  "González",
  "Pérez",
  "Rodríguez",
  "Sánchez",
  "Ramírez",
];
const STREETS = [
  "Av. Insurgentes Sur",
  "Calz. de Tlalpan",
  "Av. Universidad",
  "Eje Central Lázaro Cárdenas",
  "Av. Revolución",
];
const COLONIAS = ["Del Valle", "Narvarte", "Roma Norte", "Coyoacán", "Portales"];
const pick = (list) => list[randomInt(list.length)];
const digits = (n) => Array.from({ length: n }, () => randomInt(10)).join("");

/**
 * A patient of `branchId` as the clinics' forms fill one in: names, birth date, phone, e-mail and
 * address drawn for each (names from common ones, as a clinic's repeat), so a batch compresses as
 * real ones do, not as copies of one row; `n` keeps each last name apart.
 */
export function insertPatient(sql, branchId, id, n) {
  const [first, last, second] = [pick(FIRST_NAMES), pick(LAST_NAMES), pick(LAST_NAMES)];
  const birth = new Date(Date.UTC(1935 + randomInt(85), randomInt(12), 1 + randomInt(28)))
    .toISOString()
    .slice(0, 10);
  const email = `${first
    .split(" ")[0]
    .normalize("NFD")
    .replace(/[^a-zA-Z]/g, "")
    .toLowerCase()}.${digits(4)}@example.mx`;
  return sql`
    insert into patients (id, branch_id, first_name, last_name, second_last_name, birth_date, sex, phone,
      email, address)
    values (${id}, ${branchId}, ${first}, ${`${last} ${n}`}, ${second}, ${birth}, ${pick(["female", "male"])},
      ${`55 ${digits(4)} ${digits(4)}`}, ${email},
      ${`${pick(STREETS)} ${1 + randomInt(3000)}, Col. ${pick(COLONIAS)}, CDMX`})`;
}

/** How many patients of `branchId` `sql` holds. */
export async function patientsOf(sql, branchId) {
  const [row] = await sql`select count(*)::int as n from patients where branch_id = ${branchId}`;
  return row.n;
}

/**
 * Makes clinic `index` (everything but its daemon): its branch and `seedRows` patients of it in
 * the cloud, its node credential, its database and config, migrated by `init`.
 */
export async function createClinic({ index, tag, cloud, cloudSql, clinicServer, seedRows }) {
  const branchId = randomUUID();
  await cloudSql`insert into branches (id, code, name, address)
    values (${branchId}, ${`FL${tag.toUpperCase()}-${index}`}, ${`Clínica ${index}`}, 'Av. Reforma 1')`;
  await cloudSql`
    insert into patients (id, branch_id, first_name, last_name, birth_date, sex, phone)
    select gen_random_uuid(), ${branchId}, 'Paciente', 'Inicial ' || i, date '1940-01-01' + i % 20000,
      'unknown', '55 0000 0000'
    from generate_series(1, ${seedRows}::int) i`;
  const name = `fleet-${tag}-${index}`;
  const node = await createNodeCredential({
    cloudUrl: cloud.url,
    serviceRoleKey: cloud.serviceRoleKey,
    name,
    branches: [branchId],
  });
  const database = `fleet_${tag}_${index}`;
  await clinicServer.createDatabase(database);
  const dir = mkdtempSync(join(tmpdir(), "cv-fleet-clinic-"));
  chmodSync(dir, 0o700);
  const user = `cv_daemon_${tag}_${index}`;
  secret(dir, "node_password", node.password);
  secret(dir, "db_password", `pw-${randomUUID()}`);
  secret(dir, "admin_password", clinicServer.password);
  const url = (login) => {
    const address = new URL(clinicServer.urlFor(database));
    address.username = login;
    address.password = "";
    return address.href;
  };
  const configPath = join(dir, "sync.toml");
  const config = configText({
    name,
    cloudUrl: cloud.url,
    anonKey: cloud.anonKey,
    nodeEmail: node.email,
    clinicUrl: url(user),
    adminUrl: url(clinicServer.user),
  });
  writeFileSync(configPath, config, { mode: 0o600 });
  const clinic = {
    index,
    name,
    branchId,
    userId: node.userId,
    config,
    configPath,
    sql: postgres(clinicServer.urlFor(database), { max: 2, onnotice: () => {} }),
    daemon: undefined,
    httpPort: undefined,
    async close() {
      await this.sql.end();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const init = await runCli(["--config", configPath, "init"], AS_SERVICE, 120_000);
  if (init.code !== 0) {
    await clinic.close();
    throw new Error(`init of ${name} exited ${init.code}:\n${init.stderr}`);
  }
  return clinic;
}

/** The last log lines of a daemon, for an error message (the daemon never logs row data). */
const tail = (daemon) =>
  daemon.logs
    .slice(-5)
    .map((line) => JSON.stringify(line))
    .join("\n");

/**
 * Starts the clinic's daemon and waits until it holds the `seedRows` patients of its branch.
 * Returns the seconds from its "sync daemon started" line to then, and from its spawn.
 */
export async function startDaemon(clinic, seedRows, timeoutMs) {
  const spawnedAt = Date.now();
  clinic.daemon = spawnCli(["--config", clinic.configPath, "run"], AS_SERVICE);
  const started = await clinic.daemon.waitForLog((line) => line.msg === "sync daemon started", 60_000);
  clinic.httpPort = started.httpPort;
  const startedAt = typeof started.time === "number" ? started.time : Date.now();
  const deadline = Date.now() + timeoutMs;
  while ((await patientsOf(clinic.sql, clinic.branchId)) < seedRows) {
    if (clinic.daemon.child.exitCode !== null) {
      throw new Error(
        `${clinic.name}'s daemon exited ${clinic.daemon.child.exitCode}:\n${tail(clinic.daemon)}`,
      );
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${clinic.name} did not hold its ${seedRows} rows within ${timeoutMs} ms:\n${tail(clinic.daemon)}`,
      );
    }
    await sleep(100);
  }
  const doneAt = Date.now();
  return { fromStartS: (doneAt - startedAt) / 1000, fromSpawnS: (doneAt - spawnedAt) / 1000 };
}

/** The daemon's mode (`GET /status`), or "unreachable". */
export async function modeOf(clinic) {
  try {
    const response = await fetch(`http://127.0.0.1:${clinic.httpPort}/status`);
    return (await response.json()).mode;
  } catch {
    return "unreachable";
  }
}

/**
 * SIGTERM (the daemon finishes its batch in flight); after `graceMs`, SIGKILL to the bin and the
 * node it re-executed (killed alone, the bin would leave that one running).
 */
export async function stopDaemon(clinic, graceMs = 20_000) {
  const daemon = clinic.daemon;
  if (daemon === undefined || daemon.child.exitCode !== null || daemon.child.signalCode !== null) return;
  const pids = treePids(daemon.child.pid);
  daemon.child.kill("SIGTERM");
  const timer = setTimeout(() => {
    for (const { pid } of alive(pids)) process.kill(pid, "SIGKILL");
  }, graceMs);
  await daemon.done;
  clearTimeout(timer);
}
