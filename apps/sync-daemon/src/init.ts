import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import { CvError } from "@centrovision/core";
import postgres from "postgres";
import type { DaemonConfig } from "./config/load-config.js";
import { applyMigrations, SHIPPED_MIGRATIONS_DIR } from "./migrations.js";

export interface InitResult {
  /** Migrations applied by this run; [] when the database was current. */
  readonly migrationsApplied: readonly string[];
  /** The daemon's login: created by this run, or granted centrovision_sync, or neither (already right). */
  readonly login: { readonly user: string; readonly created: boolean; readonly granted: boolean };
  readonly node: { readonly nodeId: string; readonly nodeName: string; readonly renamed: boolean };
}

/**
 * A SCRAM-SHA-256 verifier (RFC 5802/7677, PostgreSQL's format), so `CREATE ROLE … PASSWORD`
 * never carries the clear password: a server logging statements would otherwise log it.
 */
export function scramVerifier(password: string, salt = randomBytes(16), iterations = 4096): string {
  const salted = pbkdf2Sync(password.normalize("NFKC"), salt, iterations, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = createHash("sha256").update(clientKey).digest();
  const serverKey = createHmac("sha256", salted).update("Server Key").digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString("base64")}$${storedKey.toString("base64")}:${serverKey.toString("base64")}`;
}

const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;
const quoteLiteral = (value: string) => `'${value.replaceAll("'", "''")}'`;

/**
 * Prepares the clinic database: applies the shipped migrations (EHR schema, roles, sync
 * machinery), creates the daemon's login in role `centrovision_sync` if missing, and names this
 * node. Idempotent: a second run changes nothing. Needs `[clinic] admin_url`.
 */
export async function initClinic(config: DaemonConfig): Promise<InitResult> {
  if (config.clinic.adminUrl === undefined) {
    throw new CvError(
      "invalid_config",
      "[sync-daemon] init needs [clinic] admin_url (a database owner or superuser)",
      {
        issues: [
          { path: "clinic.admin_url", message: "required by init: a database owner or superuser login" },
        ],
      },
    );
  }
  const login = new URL(config.clinic.url);
  const user = decodeURIComponent(login.username);
  const password = decodeURIComponent(login.password);
  const sql = postgres(config.clinic.adminUrl, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    const migrationsApplied = await applyMigrations(
      sql,
      config.paths.migrationsDir ?? SHIPPED_MIGRATIONS_DIR,
    );
    // doctor reads which migrations ran, and the daemon which version ran them, as its login.
    await sql`grant usage on schema cv_meta to centrovision_sync`;
    await sql`grant select on cv_meta.schema_migrations, cv_meta.product to centrovision_sync`;
    const [role] = await sql<{ member: boolean }[]>`
      select pg_has_role(oid, 'centrovision_sync', 'member') as member from pg_roles where rolname = ${user}`;
    let created = false;
    let granted = false;
    if (!role) {
      await sql.unsafe(
        `create role ${quoteIdent(user)} login password ${quoteLiteral(scramVerifier(password))} in role centrovision_sync`,
      );
      created = true;
    } else if (!role.member) {
      await sql.unsafe(`grant centrovision_sync to ${quoteIdent(user)}`);
      granted = true;
    }
    const [before] = await sql<
      { node_id: string; node_name: string }[]
    >`select node_id, node_name from cv_sync.node`;
    let node = before;
    if (before?.node_name !== config.nodeName) {
      const [after] = await sql<{ node: { node_id: string; node_name: string } }[]>`
        select cv_sync_init(${config.nodeName}) as node`;
      node = after?.node;
    }
    if (!node)
      throw new CvError("unknown", "[sync-daemon] the sync machinery has no node row after migrating");
    return {
      migrationsApplied,
      login: { user, created, granted },
      node: { nodeId: node.node_id, nodeName: node.node_name, renamed: node !== before },
    };
  } catch (error) {
    if (error instanceof CvError) throw error;
    const code = (error as { code?: string }).code ?? "error";
    const refused = code === "28P01" || code === "28000";
    throw new CvError(
      refused ? "unauthorized" : code === "ECONNREFUSED" ? "unavailable" : "unknown",
      refused
        ? `[sync-daemon] the clinic database refused the admin login (SQLSTATE ${code}): check [clinic] admin_url and admin_password_file`
        : `[sync-daemon] init failed on the clinic database (${code}): run \`centrovision-sync doctor\``,
      { cause: error },
    );
  } finally {
    await sql.end({ timeout: 5 });
  }
}
