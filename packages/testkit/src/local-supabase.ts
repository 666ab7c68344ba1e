import { createHmac, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { JWK } from "jose";
import postgres from "postgres";
import { applyMigrations, MIGRATIONS_DIR } from "./migrations.js";
import { type PostgresServer, startPostgres } from "./postgres.js";
import { AuthFailure } from "./supabase/auth-errors.js";
import { FOREVER_MS } from "./supabase/auth-users.js";
import { type Gateway, startGateway } from "./supabase/gateway.js";
import { createSupabaseKeys, type SupabaseKeys } from "./supabase/jwt.js";
import { applyRealtimeShape } from "./supabase/realtime-shape.js";
import { checkSafeUpdate } from "./supabase/safeupdate.js";
import { applySupabaseShape, SUPABASE_SUPERUSER } from "./supabase/shape.js";
import {
  generateSigningKey,
  importSigningKey,
  type JsonWebKeySet,
  jwksOf,
  type SigningKey,
} from "./supabase/signing-key.js";

export interface StartLocalSupabaseOptions {
  /** Gateway port on 127.0.0.1. Default: a free port. */
  port?: number;
  /**
   * PostgreSQL data directory, kept on `stop()`; a restart on it finds the same
   * data, the same JWT secret and the same signing key. Default: a temp dir removed on `stop()`.
   * Ignored when `postgres` is given.
   */
  dataDir?: string;
  /** SQL files applied after the migrations, in order (recorded like migrations, so applied once). */
  sqlFiles?: readonly string[];
  /** HS256 secret (≥ 32 characters). Default: the one saved in `dataDir`, else random. */
  jwtSecret?: string;
  /**
   * Reuse a running server: the stack gets its own database on it, dropped on `stop()`. Its
   * superuser must not be `postgres` (start it with `superuser: "supabase_admin"`): the stack
   * demotes `postgres` as a hosted project does.
   */
  postgres?: PostgresServer;
  /** With `postgres`: the database to use (created if missing, kept on `stop()`). Default: a fresh one. */
  database?: string;
  /** Numbered migrations applied before `sqlFiles`. Default: the repository's `sql/`. */
  migrationsDir?: string;
  /** Supabase's `db-max-rows`. Default 1000, as Supabase; null for no cap. */
  maxRows?: number | null;
  /** Lifetime of the access tokens Auth issues (`GOTRUE_JWT_EXP`). Default 3600. */
  jwtExpirySeconds?: number;
  /**
   * How long a revoked refresh token may still be used (concurrent or retried refreshes), as
   * `GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL`. Default 10.
   */
  refreshTokenReuseIntervalSeconds?: number;
  /**
   * How long Realtime waits before answering a refused channel join (`CHANNEL_ERROR_BACKOFF_MS`).
   * Default 5000, as Supabase's.
   */
  realtimeChannelErrorBackoffMs?: number;
  /** Operational log lines (never request data). Default: stderr. */
  log?: (line: string) => void;
}

export interface CreateUserOptions {
  readonly email: string;
  readonly password: string;
  readonly userMetadata?: Readonly<Record<string, unknown>>;
  /** Merged over `{ provider: "email", providers: ["email"] }`. */
  readonly appMetadata?: Readonly<Record<string, unknown>>;
  /** Banned for good (`ban_duration: "876000h"`): sign-in and refresh answer `user_banned`. */
  readonly banned?: boolean;
}

export interface LocalSupabase extends SupabaseKeys {
  /**
   * Base URL for `createClient(url, key)`; the REST API is `<url>/rest/v1`, Supabase Auth
   * `<url>/auth/v1`, Realtime's WebSocket `<url>/realtime/v1/websocket`.
   */
  readonly url: string;
  /** The public signing key, as `<url>/auth/v1/.well-known/jwks.json` serves it. */
  readonly jwks: JsonWebKeySet;
  /**
   * Creates a confirmed email user who can sign in with `password`, as the admin API
   * (`auth.admin.createUser` with `email_confirm`) would. Rejects with a `[testkit]` error for an
   * invalid or taken email.
   */
  createUser(user: CreateUserOptions): Promise<{ id: string }>;
  /** Superuser URL of the database behind the gateway, for direct probes. */
  readonly dbUrl: string;
  /**
   * The project's own connection string: the `postgres` login, not a superuser (CREATEROLE,
   * BYPASSRLS, member of the API roles), as a hosted project's dashboard gives it. The
   * migrations ran as this user.
   */
  readonly postgresUrl: string;
  /** Re-reads the schema cache now (DDL also triggers a reload through `NOTIFY pgrst`). */
  reloadSchema(): Promise<void>;
  /** Stops the gateway (closing keep-alive sockets) and what this call started. Idempotent. */
  stop(): Promise<void>;
}

const STATE_FILE = "cv-local-supabase.json";

interface SavedState {
  password: string;
  jwtSecret: string;
  /** The private signing JWK; absent in data directories made before Supabase Auth was served. */
  signingKey?: JWK;
  /** Absent in data directories made before the hosted shape, whose superuser is `postgres`. */
  superuser?: string;
}

async function readState(dataDir: string): Promise<SavedState | undefined> {
  const file = join(dataDir, STATE_FILE);
  if (!existsSync(file)) {
    if (existsSync(join(dataDir, "PG_VERSION"))) {
      throw new Error(
        `[testkit] ${dataDir} holds a PostgreSQL cluster that startLocalSupabase did not create; ` +
          `start it with startPostgres({ superuser: "${SUPABASE_SUPERUSER}" }) and pass it as \`postgres\``,
      );
    }
    return undefined;
  }
  const state = JSON.parse(await readFile(file, "utf8")) as SavedState;
  if (state.superuser !== SUPABASE_SUPERUSER) {
    throw new Error(
      `[testkit] ${dataDir} was made by an older local Supabase whose superuser is "postgres"; ` +
        "a hosted project's postgres is not a superuser, so that layout cannot be upgraded in place: remove the directory and start again",
    );
  }
  return state;
}

type ProjectLogin = "authenticator" | "postgres" | "supabase_auth_admin";

/** Every stack on one cluster derives the same role passwords, so none locks another out. */
function rolePassword(server: PostgresServer, role: ProjectLogin): string {
  return createHmac("sha256", server.password).update(`cv-local-supabase ${role}`).digest("hex");
}

function roleUrl(server: PostgresServer, database: string, role: ProjectLogin): string {
  return `postgres://${role}:${rolePassword(server, role)}@127.0.0.1:${server.port}/${database}`;
}

/**
 * Gives `database` (which must exist on `server`) a hosted Supabase project's shape, without
 * migrating it or starting a gateway: for tests of `sql/` against that shape. Returns the URLs
 * of the project's `postgres` login (not a superuser; run migrations as it), of the
 * gateway's `authenticator` login and of Auth's `supabase_auth_admin`.
 */
export async function shapeSupabaseDatabase(
  server: PostgresServer,
  database: string,
): Promise<{ postgresUrl: string; authenticatorUrl: string; authAdminUrl: string }> {
  await applySupabaseShape(server.url, server.urlFor(database), {
    authenticator: rolePassword(server, "authenticator"),
    postgres: rolePassword(server, "postgres"),
    authAdmin: rolePassword(server, "supabase_auth_admin"),
  });
  // The platform creates the realtime schema before any project migration, which may add policies on it.
  await applyRealtimeShape(server.url, server.urlFor(database));
  return {
    postgresUrl: roleUrl(server, database, "postgres"),
    authenticatorUrl: roleUrl(server, database, "authenticator"),
    authAdminUrl: roleUrl(server, database, "supabase_auth_admin"),
  };
}

/**
 * pg-safeupdate, which a hosted project loads for API sessions, refuses an UPDATE or DELETE
 * without WHERE, inside functions too. Emulated statically: every installed function is parsed
 * and a start-up that would install one such statement fails, naming it.
 */
async function assertSafeUpdate(url: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const { violations, unchecked } = await checkSafeUpdate(sql);
    const problems = [
      ...violations.map((v) => `${v.fn}: ${v.statement} without WHERE: ${v.sql}`),
      ...unchecked.map((u) => `${u.fn}: dynamic SQL that cannot be checked (${u.reason})`),
    ];
    if (problems.length > 0) {
      throw new Error(
        `[testkit] a hosted project's pg-safeupdate would refuse these statements (add a WHERE clause; WHERE true is allowed):\n  ${problems.join("\n  ")}`,
      );
    }
  } finally {
    await sql.end();
  }
}

async function ensureDatabase(server: PostgresServer, name: string): Promise<void> {
  const sql = postgres(server.url, { max: 1, onnotice: () => {} });
  try {
    const [found] = await sql`select 1 from pg_database where datname = ${name}`;
    if (!found) await server.createDatabase(name);
  } finally {
    await sql.end();
  }
}

async function dropDatabase(server: PostgresServer, name: string): Promise<void> {
  const sql = postgres(server.url, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await sql.end();
  }
}

/**
 * Starts a local Supabase: PostgreSQL with Supabase's roles and `auth`
 * schema, the migrations and `sqlFiles` applied, and a gateway that supabase-js
 * talks to: PostgREST-compatible at `<url>/rest/v1`, Supabase Auth at
 * `<url>/auth/v1`. It requires an `apikey` like Supabase's API gateway; use
 * `anonKey`/`serviceRoleKey`, sign in a user made with `createUser()`, or
 * `mintUserToken()`.
 */
export async function startLocalSupabase(options: StartLocalSupabaseOptions = {}): Promise<LocalSupabase> {
  const ownsServer = options.postgres === undefined;
  const saved = ownsServer && options.dataDir !== undefined ? await readState(options.dataDir) : undefined;
  const server =
    options.postgres ??
    (await startPostgres({
      superuser: SUPABASE_SUPERUSER,
      ...(options.dataDir !== undefined && { dataDir: options.dataDir }),
      ...(saved && { password: saved.password }),
    }));
  const database = ownsServer
    ? "postgres"
    : (options.database ?? `cv_supabase_${randomBytes(6).toString("hex")}`);
  const ownsDatabase = !ownsServer && options.database === undefined;
  let gateway: Gateway | undefined;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const cleanUp = async () => {
    await gateway?.close();
    if (ownsDatabase) {
      // The caller may have stopped the shared server first; its databases went with it.
      await dropDatabase(server, database).catch((error: unknown) => {
        log(
          `[testkit] could not drop database ${database}: ${(error as { code?: string }).code ?? "unknown error"}`,
        );
      });
    }
    if (ownsServer) await server.stop();
  };
  try {
    const jwtSecret = options.jwtSecret ?? saved?.jwtSecret ?? randomBytes(32).toString("base64url");
    const signingKey: SigningKey = saved?.signingKey
      ? await importSigningKey(saved.signingKey)
      : await generateSigningKey();
    if (ownsServer && options.dataDir !== undefined && !saved?.signingKey) {
      const state: SavedState = {
        password: server.password,
        jwtSecret: saved?.jwtSecret ?? jwtSecret,
        signingKey: signingKey.privateJwk,
        superuser: server.user,
      };
      await writeFile(join(options.dataDir, STATE_FILE), JSON.stringify(state), { mode: 0o600 });
    }
    if (!ownsServer) await ensureDatabase(server, database);
    const dbUrl = server.urlFor(database);
    const { postgresUrl, authenticatorUrl, authAdminUrl } = await shapeSupabaseDatabase(server, database);
    await applyMigrations(postgresUrl, {
      dir: options.migrationsDir ?? MIGRATIONS_DIR,
      extraFiles: options.sqlFiles ?? [],
    });
    await assertSafeUpdate(dbUrl);
    gateway = await startGateway({
      databaseUrl: authenticatorUrl,
      jwtSecret,
      signingKey,
      auth: {
        databaseUrl: authAdminUrl,
        jwtExpirySeconds: options.jwtExpirySeconds ?? 3600,
        refreshTokenReuseIntervalSeconds: options.refreshTokenReuseIntervalSeconds ?? 10,
      },
      realtime: { databaseUrl: dbUrl, channelErrorBackoffMs: options.realtimeChannelErrorBackoffMs ?? 5000 },
      ...(options.port !== undefined && { port: options.port }),
      ...(options.maxRows !== undefined && { maxRows: options.maxRows }),
      log,
    });
    const started = gateway;
    const keys = await createSupabaseKeys(jwtSecret, { signingKey, issuer: `${started.url}/auth/v1` });
    let stopped: Promise<void> | undefined;
    return {
      ...keys,
      url: started.url,
      jwks: jwksOf(signingKey),
      dbUrl,
      postgresUrl,
      reloadSchema: () => started.reloadSchema(),
      createUser: async (user) => {
        try {
          const row = await started.createUser({
            email: user.email,
            password: user.password,
            emailConfirm: true,
            ...(user.userMetadata !== undefined && { userMetadata: user.userMetadata }),
            ...(user.appMetadata !== undefined && { appMetadata: user.appMetadata }),
            ...(user.banned && { banDurationMs: FOREVER_MS }),
          });
          return { id: row.id };
        } catch (error) {
          // Auth's own refusal (taken email, bad address): say which, never the email itself.
          if (error instanceof AuthFailure) {
            throw new Error(`[testkit] createUser refused: ${error.message}`, { cause: error });
          }
          throw error;
        }
      },
      stop: () => {
        stopped ??= cleanUp();
        return stopped;
      },
    };
  } catch (error) {
    await cleanUp();
    throw error;
  }
}
