import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tlsOptions } from "@centrovision/adapter-postgres";
import type { ConnectionStatus } from "@centrovision/core";
import { createClientApplier } from "@centrovision/offline";
import { applyMigrations, freePort, type PostgresServer, startPostgres } from "@centrovision/testkit";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createClinicDoor } from "../src/backend/clinic-door.js";
import { createPcStack, type PcStack } from "../src/backend/stack.js";
import { loadDesktopConfig } from "../src/config.js";
import { onDatabase } from "../src/demo/demo-stack.js";
import { waitFor } from "./support.js";

/*
 * The PC and its clinic server across the LAN: TLS, checked against the clinic's CA (what
 * setup-server.sh makes). A real PostgreSQL with ssl on (testkit's `tls`) and the PC's whole stack
 * built from its config.toml; the cloud is not there (a closed port).
 */

const PC = { user: "pc_tls", password: "pc-tls-secret" };
let server: PostgresServer;
let db: string;
let dir: string;
let stack: PcStack | undefined;

beforeAll(async () => {
  server = await startPostgres({ tls: true });
  db = await server.createDatabase("clinic_tls");
  await applyMigrations(db);
  await onDatabase(db, (sql) =>
    sql.unsafe(`create role ${PC.user} login password '${PC.password}' in role centrovision_app`),
  );
}, 120_000);

afterAll(async () => {
  await server?.stop();
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "cv-desktop-tls-"));
  await writeFile(join(dir, "clinic-password"), PC.password, { mode: 0o600 });
});

afterEach(async () => {
  await stack?.close();
  stack = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** The PC's stack from a config whose `[local_server]` ends with `lan` (tls, ca_file). */
async function pcWith(lan: string): Promise<PcStack> {
  const file = join(dir, "config.toml");
  await writeFile(
    file,
    [
      `branch_id = "6f0e0f7c-3f3e-4c2b-9d7e-1c2b3a4d5e6f"`,
      "[supabase]",
      `url = "http://127.0.0.1:${await freePort()}"`,
      `anon_key = "anon"`,
      "[local_server]",
      `url = "postgres://127.0.0.1:${server.port}/clinic_tls"`,
      `user = "${PC.user}"`,
      `password_file = "clinic-password"`,
      lan,
      "[sqlite]",
      `path = "local/pc.cvdb"`,
      `key_file = "keys/pc.key"`,
      `keychain = "off"`,
    ].join("\n"),
    { mode: 0o600 },
  );
  stack = await createPcStack({ config: loadDesktopConfig(file), onError: () => {} });
  return stack;
}

const clinicOf = (pc: PcStack): ConnectionStatus["tiers"]["clinic"] => pc.router.getStatus().tiers.clinic;

describe("the PC's link to its clinic server", () => {
  it("verifies the server against the clinic's CA (verify-full, the default) and works over TLS", async () => {
    const pc = await pcWith(`ca_file = "${server.tls?.caFile}"`);
    await waitFor("the clinic server up over TLS", async () => clinicOf(pc).health === "up", 20_000);
  });

  it("refuses a server its CA did not sign: down, saying why, never plain", async () => {
    const pc = await pcWith(`tls = "verify-full"\nca_file = "${server.tls?.otherCaFile}"`);
    await waitFor("the clinic server refused", async () => clinicOf(pc).health === "down", 20_000);
    expect(clinicOf(pc).lastError).toMatch(/TLS certificate failed verification/);
  });
});

describe("every other connection of the PC to its clinic server", () => {
  it("checks the server's certificate alike: the sign-in door and the client apply", async () => {
    const url = new URL(db);
    url.username = PC.user;
    url.password = PC.password;
    for (const [ca, works] of [
      [server.tls?.caFile, true],
      [server.tls?.otherCaFile, false],
    ] as const) {
      const ssl = tlsOptions("verify-full", "127.0.0.1", readFileSync(ca as string, "utf8"));
      const door = createClinicDoor({ url: url.href, ssl });
      const applier = createClientApplier({ postgres: { url: url.href, ssl }, label: "clinic server" });
      try {
        const outcomes = await Promise.allSettled([door.keyId(), applier.logPosition()]);
        expect(outcomes.map((o) => o.status)).toEqual(
          works ? ["fulfilled", "fulfilled"] : ["rejected", "rejected"],
        );
      } finally {
        await applier.close();
      }
    }
  });
});
