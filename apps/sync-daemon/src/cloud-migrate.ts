import { resolve } from "node:path";
import { CvError, type InputIssue, listIssues } from "@centrovision/core";
import {
  type Migration,
  pendingMigrations,
  refuseNewerDatabase,
  runMigrations,
} from "@centrovision/core/migrations";
import postgres from "postgres";
import { readSecretFile, redactUrl } from "./config/load-config.js";
import { readMigrations, SHIPPED_MIGRATIONS_DIR } from "./migrations.js";

/** The environment variable `cloud migrate` reads the project's connection string from. */
export const CLOUD_DB_URL_ENV = "CENTROVISION_CLOUD_DB_URL";

/**
 * The cloud database's connection string, from an owner-only file or from the environment. Never
 * an argument: a command line is visible to every user of the machine (`ps`) and stays in shell
 * history, and this one holds the database password. Throws `invalid_config` listing the problems,
 * never the value.
 */
export function cloudDbUrl(file: string | undefined, fromEnv: string | undefined): string {
  const issues: InputIssue[] = [];
  let url: string | undefined;
  let where = CLOUD_DB_URL_ENV;
  if (file !== undefined && fromEnv) {
    issues.push({ path: "--db-url-file", message: `give --db-url-file or ${CLOUD_DB_URL_ENV}, not both` });
  } else if (file !== undefined) {
    where = "--db-url-file";
    url = readSecretFile(resolve(file), where, "connection string", issues);
  } else if (fromEnv) {
    url = fromEnv.trim();
  } else {
    issues.push({
      path: CLOUD_DB_URL_ENV,
      message:
        "not set: set it to the project's connection string (postgresql://postgres:…@db.<ref>.supabase.co:5432/postgres), or pass --db-url-file <file>",
    });
  }
  if (url) {
    let protocol: string | undefined;
    try {
      protocol = new URL(url).protocol;
    } catch {
      protocol = undefined;
    }
    if (protocol !== "postgres:" && protocol !== "postgresql:") {
      // The value is not shown: it holds the password.
      issues.push({ path: where, message: "not a postgresql:// connection string" });
    }
  }
  if (issues.length > 0 || !url) {
    throw new CvError("invalid_config", `[sync-daemon] no cloud database: ${listIssues(issues)}`, { issues });
  }
  return url;
}

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);

/**
 * The dashboard's connection string has no `sslmode`, and postgres.js then connects in plain
 * text, password included: to a remote host without one, TLS is required (encrypted, though the
 * certificate is not checked). An explicit `sslmode` is left as given.
 */
export function defaultTls(url: string): { ssl?: "require" } {
  const parsed = new URL(url);
  return LOOPBACK.has(parsed.hostname) || parsed.searchParams.has("sslmode") ? {} : { ssl: "require" };
}

/**
 * A warning when the link to a remote database is not verified TLS (with `require` or `prefer`
 * a man in the middle is accepted). Undefined when verified or local.
 */
export function tlsWarning(url: string): string | undefined {
  const parsed = new URL(url);
  const mode = parsed.searchParams.get("sslmode") ?? "require";
  const verified =
    mode === "verify-full" || mode === "verify-ca" || parsed.searchParams.get("sslrootcert") === "system";
  if (verified || LOOPBACK.has(parsed.hostname)) return undefined;
  return (
    `warning: sslmode=${mode}: the connection to ${parsed.hostname} ${mode === "disable" ? "is not encrypted" : "is encrypted but its certificate is not checked"}; ` +
    "append ?sslmode=verify-full and set NODE_EXTRA_CA_CERTS to the project's CA certificate (Supabase dashboard, Database settings → SSL configuration)"
  );
}

/** What `sql`'s database lacks of a Supabase project's shape; [] when it has all of it. */
export async function missingSupabaseShape(sql: postgres.Sql): Promise<string[]> {
  const [shape] = await sql<{ auth: boolean; uid: boolean; roles: string[] }[]>`
    select to_regnamespace('auth') is not null as auth,
      to_regprocedure('auth.uid()') is not null as uid,
      array(
        select r from unnest(array['anon', 'authenticated', 'service_role']) r
        where not exists (select from pg_roles where rolname = r)
      ) as roles`;
  return [
    ...(shape?.auth ? [] : ["schema auth"]),
    ...(shape?.uid ? [] : ["function auth.uid()"]),
    ...(shape?.roles ?? []).map((role) => `role ${role}`),
  ];
}

export interface MigrateCloudOptions {
  /** Default: the `sql/` shipped with the daemon. */
  readonly migrationsDir?: string;
  /** Only list what is pending. */
  readonly dryRun?: boolean;
  /** Each migration's name as it is applied (or, on a dry run, found pending): progress over a slow link. */
  readonly onMigration?: (name: string) => void;
}

export interface MigrateCloudResult {
  /** Applied by this run, or pending on a dry run; [] when the database is current. */
  readonly migrations: readonly string[];
  /** Migrations in the folder. */
  readonly total: number;
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS|ERR_SSL/;

/** A driver error as a CvError whose message names the database without its password. */
function cloudError(error: unknown, url: string, migration: string | undefined): CvError {
  const where = redactUrl(url);
  const { code = "error", message = "" } = error as { code?: string; message?: string };
  const fromServer = (error as { name?: string }).name === "PostgresError";
  if (code === "28P01" || code === "28000") {
    return new CvError(
      "unauthorized",
      `[sync-daemon] ${where} refused the login (SQLSTATE ${code}: ${message}): check the connection string's password (Supabase dashboard, Project Settings → Database)`,
      { cause: error },
    );
  }
  if (!fromServer && TLS_CODES.test(code)) {
    return new CvError(
      "unavailable",
      `[sync-daemon] TLS to ${where} failed (${code}): for sslmode=verify-full, set NODE_EXTRA_CA_CERTS to the project's CA certificate (dashboard, Database → SSL Configuration)`,
      { cause: error },
    );
  }
  if (!fromServer) {
    return new CvError(
      code === "CONNECT_TIMEOUT" || code === "ETIMEDOUT" ? "timeout" : "unavailable",
      `[sync-daemon] cannot reach ${where} (${code}): check the host, and that this network reaches it (direct connections to db.<ref>.supabase.co use IPv6; on IPv4 use the dashboard's session pooler string)`,
      { cause: error },
    );
  }
  return new CvError(
    "unknown",
    migration === undefined
      ? `[sync-daemon] ${where} failed (SQLSTATE ${code}: ${message})`
      : `[sync-daemon] migration ${migration} failed on ${where} (SQLSTATE ${code}: ${message}); it was rolled back, the migrations before it stay applied`,
    { cause: error },
  );
}

/**
 * Installs or upgrades the cloud schema on the Supabase project at `url` (its `postgres` login,
 * which is not a superuser on a hosted project): refuses a database without Supabase's shape
 * before touching it, then applies the pending migrations in order with core's runner (each in
 * its own transaction; a changed repeatable `functions/` file again; a numbered one edited after
 * it was applied stops the run with `conflict`, applying nothing after it). Idempotent: a current
 * database is read, not written.
 */
export async function migrateCloud(
  url: string,
  options: MigrateCloudOptions = {},
): Promise<MigrateCloudResult> {
  const migrations: Migration[] = await readMigrations(
    options.migrationsDir ?? SHIPPED_MIGRATIONS_DIR,
    "--migrations-dir",
  );
  // sslmode comes from the URL (postgres.js reads it); without one, a remote host gets TLS.
  const sql = postgres(url, { max: 1, connect_timeout: 10, onnotice: () => {}, ...defaultTls(url) });
  let current: string | undefined;
  try {
    const missing = await missingSupabaseShape(sql);
    if (missing.length > 0) {
      throw new CvError(
        "invalid_input",
        `[sync-daemon] ${redactUrl(url)} is not a Supabase project: it has no ${missing.join(", ")}. ` +
          "The cloud needs Supabase's auth schema and roles (its people sign in with Supabase Auth); " +
          "on another database the migrations set up a clinic server's own identity instead " +
          "(0003_roles.sql: its signing key and clinic sessions). Nothing was applied. Use the " +
          "connection string of the project from the Supabase dashboard (a clinic server is prepared " +
          "by `centrovision-sync init` instead)",
      );
    }
    await refuseNewerDatabase(sql, migrations);
    const pending = await pendingMigrations(sql, migrations);
    if (options.dryRun || pending.length === 0) {
      for (const name of pending) options.onMigration?.(name);
      return { migrations: pending, total: migrations.length };
    }
    // Each name is printed as it lands, and a failure names the migration that was running.
    current = pending[0];
    const applied = await runMigrations(sql, migrations, {
      onApplied: (name) => {
        options.onMigration?.(name);
        current = pending[pending.indexOf(name) + 1];
      },
    });
    return { migrations: applied, total: migrations.length };
  } catch (error) {
    if (error instanceof CvError) throw error;
    throw cloudError(error, url, current);
  } finally {
    await sql.end({ timeout: 5 });
  }
}
