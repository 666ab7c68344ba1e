import { readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { CvError, type InputIssue, listIssues, zodIssues } from "@centrovision/core";
import { parse as parseToml, TomlError } from "smol-toml";
import { type DaemonConfigFile, daemonConfigSchema, SECRETS } from "./config-schema.js";

/** Where the daemon looks when `--config` is not given. */
export const DEFAULT_CONFIG_PATH = "/etc/centrovision/sync.toml";

/**
 * The daemon's settings with secrets resolved, ready for {@link startDaemon}. Built by
 * {@link loadConfig} from a TOML file, or by hand when embedding the daemon (the demo).
 */
export interface DaemonConfig {
  readonly nodeName: string;
  readonly cloud: {
    readonly url: string;
    /** The project's anon (public) key. */
    readonly anonKey: string;
    /** The clinic server's node credential (`centrovision-sync node create`). */
    readonly nodeEmail: string;
    /** Never log it (the logger redacts `nodePassword`). */
    readonly nodePassword: string;
    readonly timeoutMs: number;
  };
  readonly clinic: {
    /** The daemon's login, password included: never log it (see {@link redactUrl}). */
    readonly url: string;
    readonly timeoutMs: number;
    /** For `init` only; password included. */
    readonly adminUrl?: string;
  };
  readonly sync: {
    readonly intervalMs: number;
    readonly quietIntervalMs: number;
    readonly pageSize: number;
    readonly snapshotPageSize: number;
    readonly pageBudgetMs: number;
    readonly minBackoffMs: number;
    readonly maxBackoffMs: number;
    readonly purgeIntervalMs: number;
    readonly purgeRetention: string;
  };
  readonly http: { readonly enabled: boolean; readonly host: string; readonly port: number };
  readonly log: { readonly level: string; readonly progressIntervalS: number };
  readonly paths: { readonly migrationsDir?: string; readonly dataDir: string };
}

export interface LoadConfigOptions {
  /** Where `*_env` secrets are read; default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
}

/** `host:port/db` as `user@host:port/db`: what messages and logs may show of a URL. */
export function redactUrl(url: string): string {
  const parsed = new URL(url);
  const user = parsed.username ? `${decodeURIComponent(parsed.username)}@` : "";
  return `${user}${parsed.host}${parsed.pathname}`;
}

/** Problems of a file's permissions, or [] when only its owner (and group) may read it. */
function permissionIssues(path: string, configPath: string): InputIssue[] {
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o007) === 0) return [];
  return [
    {
      path: configPath,
      message: `${path} is readable by others (mode ${mode.toString(8).padStart(4, "0")}): run chmod 600 ${path} (or 640 with group centrovision)`,
    },
  ];
}

const errno = (error: unknown) => (error as NodeJS.ErrnoException).code ?? "error";

/**
 * Reads a one-line secret from `path`, refusing a file others may read. A problem is pushed to
 * `issues` under `where` (the setting or flag that named the file), never with the file's content,
 * and the result is then undefined (or "" for an empty file). `what` names the secret in messages.
 */
export function readSecretFile(
  path: string,
  where: string,
  what: string,
  issues: InputIssue[],
): string | undefined {
  try {
    const permission = permissionIssues(path, where);
    if (permission.length > 0) {
      issues.push(...permission);
      return undefined;
    }
    const value = readFileSync(path, "utf8").trim();
    if (value === "") issues.push({ path: where, message: `${path} is empty: write the ${what} in it` });
    return value;
  } catch (error) {
    issues.push({
      path: where,
      message: `cannot read ${path} (${errno(error)}): create it, owner-only (chmod 600)`,
    });
    return undefined;
  }
}

/**
 * The secret `key` of `section` (raw or parsed): read from its file or variable, or undefined with
 * the problem pushed to `issues`. Skipped when a setting of it is among `flagged` (paths already
 * reported: a malformed name, both given), so each problem is listed once.
 */
function readSecret(
  section: Record<string, unknown>,
  sectionPath: string,
  key: string,
  baseDir: string,
  env: LoadConfigOptions["env"],
  issues: InputIssue[],
  flagged: ReadonlySet<string> = new Set(),
): string | undefined {
  const file = section[`${key}_file`];
  const variable = section[`${key}_env`];
  if (flagged.has(`${sectionPath}.${key}_file`) || flagged.has(`${sectionPath}.${key}_env`)) return undefined;
  if (typeof file === "string") {
    const path = isAbsolute(file) ? file : resolve(baseDir, file);
    return readSecretFile(path, `${sectionPath}.${key}_file`, key, issues);
  }
  if (typeof variable === "string") {
    const value = env?.[variable];
    if (value === undefined || value === "") {
      issues.push({
        path: `${sectionPath}.${key}_env`,
        message: `environment variable ${variable} is not set: set it (e.g. EnvironmentFile= in the systemd unit)`,
      });
    }
    return value;
  }
  return undefined;
}

/** `[cloud] anon_key_file`: public, so any file mode will do; unreadable or empty is an issue. */
function readPublicFile(file: string | undefined, baseDir: string, issues: InputIssue[]): string | undefined {
  if (file === undefined) return undefined;
  const path = isAbsolute(file) ? file : resolve(baseDir, file);
  try {
    const value = readFileSync(path, "utf8").trim();
    if (value !== "") return value;
    issues.push({
      path: "cloud.anon_key_file",
      message: `${path} is empty: write the project's anon key in it`,
    });
  } catch (error) {
    issues.push({
      path: "cloud.anon_key_file",
      message: `cannot read ${path} (${errno(error)}): put the project's anon key in it (Supabase dashboard → Settings → API)`,
    });
  }
  return undefined;
}

function withPassword(url: string, password: string | undefined): string {
  const parsed = new URL(url);
  if (password !== undefined) parsed.password = encodeURIComponent(password);
  return parsed.href;
}

/**
 * Secrets given twice or not at all. Checked on the raw document, beside zod, so they are listed
 * with every other problem (zod skips an object's refinements once one of its fields is wrong).
 */
function secretChoiceIssues(document: unknown): InputIssue[] {
  const issues: InputIssue[] = [];
  const cloud = (document as Record<string, unknown> | null)?.cloud;
  if (typeof cloud === "object" && cloud !== null) {
    const { anon_key: inline, anon_key_file: file } = cloud as Record<string, unknown>;
    if (inline !== undefined && file !== undefined) {
      issues.push({ path: "cloud.anon_key_file", message: "give anon_key or anon_key_file, not both" });
    } else if (inline === undefined && file === undefined) {
      issues.push({
        path: "cloud.anon_key",
        message:
          "required: the project's anon (public) key (Supabase dashboard → Settings → API), or anon_key_file: a file holding it",
      });
    }
  }
  for (const [section, key, required] of SECRETS) {
    const raw = (document as Record<string, unknown> | null)?.[section];
    if (typeof raw !== "object" || raw === null) continue;
    const given = [`${key}_file`, `${key}_env`].filter(
      (name) => (raw as Record<string, unknown>)[name] !== undefined,
    );
    if (given.length > 1) {
      issues.push({ path: `${section}.${key}_env`, message: `give ${key}_file or ${key}_env, not both` });
    } else if (required && given.length === 0) {
      issues.push({
        path: `${section}.${key}_file`,
        message: `required: the file (or ${key}_env: the environment variable) holding the ${key.replaceAll("_", " ")}`,
      });
    }
  }
  return issues;
}

const section = (document: unknown, name: string): Record<string, unknown> => {
  const value = (document as Record<string, unknown> | null)?.[name];
  return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};
};

/**
 * Validates a parsed TOML document and reads its secrets. Throws `invalid_config` listing every
 * problem with its TOML path (and never a value). `baseDir` anchors relative secret files.
 */
export function resolveConfig(
  document: unknown,
  baseDir: string,
  options: LoadConfigOptions = {},
): DaemonConfig {
  return resolveWith(document, baseDir, options, []);
}

/**
 * {@link resolveConfig}, listing `earlier` problems (the config file's own) with the rest. Secrets
 * are read from the raw document beside zod, so a schema error does not hide a missing or exposed
 * secret file: schema, cross-field and file problems come out in one pass.
 */
function resolveWith(
  document: unknown,
  baseDir: string,
  options: LoadConfigOptions,
  earlier: readonly InputIssue[],
): DaemonConfig {
  const env = options.env ?? process.env;
  const parsed = daemonConfigSchema.safeParse(document);
  const issues: InputIssue[] = [
    ...earlier,
    ...(parsed.success ? [] : zodIssues(parsed.error, "(config)", "unknown setting")),
    ...secretChoiceIssues(document),
  ];
  const flagged = new Set(issues.map((issue) => issue.path));
  const cloud = section(document, "cloud");
  const clinic = section(document, "clinic");
  const anonFile =
    typeof cloud.anon_key_file === "string" &&
    cloud.anon_key_file !== "" &&
    !flagged.has("cloud.anon_key_file")
      ? cloud.anon_key_file
      : undefined;
  const anonKey =
    typeof cloud.anon_key === "string" ? cloud.anon_key : readPublicFile(anonFile, baseDir, issues);
  const nodePassword = readSecret(cloud, "cloud", "node_password", baseDir, env, issues, flagged);
  const password = readSecret(clinic, "clinic", "password", baseDir, env, issues, flagged);
  const adminPassword = readSecret(clinic, "clinic", "admin_password", baseDir, env, issues, flagged);
  if (!parsed.success || issues.length > 0 || anonKey === undefined || nodePassword === undefined) {
    throw new CvError("invalid_config", `[sync-daemon] invalid config: ${listIssues(issues)}`, { issues });
  }
  const file: DaemonConfigFile = parsed.data;
  return Object.freeze({
    nodeName: file.node.name,
    cloud: {
      url: file.cloud.url,
      anonKey,
      nodeEmail: file.cloud.node_email,
      nodePassword,
      timeoutMs: file.cloud.timeout_ms,
    },
    clinic: {
      url: withPassword(file.clinic.url, password),
      timeoutMs: file.clinic.timeout_ms,
      ...(file.clinic.admin_url !== undefined && {
        adminUrl: withPassword(file.clinic.admin_url, adminPassword),
      }),
    },
    sync: {
      intervalMs: file.sync.interval_ms,
      quietIntervalMs: file.sync.quiet_interval_ms,
      pageSize: file.sync.page_size,
      snapshotPageSize: file.sync.snapshot_page_size,
      pageBudgetMs: file.sync.page_budget_ms,
      minBackoffMs: file.sync.min_backoff_ms,
      maxBackoffMs: file.sync.max_backoff_ms,
      purgeIntervalMs: file.sync.purge_interval_minutes * 60_000,
      purgeRetention: file.sync.log_retention,
    },
    http: { enabled: file.http.enabled, host: file.http.host, port: file.http.port },
    log: { level: file.log.level, progressIntervalS: file.log.progress_interval_s },
    paths: {
      dataDir: file.paths.data_dir,
      ...(file.paths.migrations_dir !== undefined && {
        migrationsDir: resolve(baseDir, file.paths.migrations_dir),
      }),
    },
  });
}

/**
 * `config` with the admin login `init` uses taken from the command line instead of the file (so
 * the superuser password need not be readable by the daemon's user). Same checks as the file's.
 */
export function withAdminLogin(
  config: DaemonConfig,
  adminUrl: string,
  passwordFile: string | undefined,
): DaemonConfig {
  const issues: InputIssue[] = [];
  const url = daemonConfigSchema.shape.clinic.shape.admin_url.safeParse(adminUrl);
  if (!url.success) issues.push(...zodIssues(url.error, "--admin-url"));
  const password =
    passwordFile === undefined
      ? undefined
      : readSecret({ password_file: passwordFile }, "--admin", "password", process.cwd(), {}, issues);
  if (issues.length > 0) {
    throw new CvError("invalid_config", `[sync-daemon] invalid admin login: ${listIssues(issues)}`, {
      issues,
    });
  }
  return Object.freeze({
    ...config,
    clinic: { ...config.clinic, adminUrl: withPassword(adminUrl, password) },
  });
}

/**
 * Reads the daemon's TOML file ({@link readConfigDocument}), then {@link resolveConfig}.
 */
export function loadConfig(
  path: string = DEFAULT_CONFIG_PATH,
  options: LoadConfigOptions = {},
): DaemonConfig {
  const { document, issues } = readDocument(path);
  // A config file readable by others is listed with every other problem, not alone.
  return resolveWith(document, dirname(resolve(path)), options, issues);
}

/**
 * The config file's TOML document, unvalidated: refuses a file readable by others (it names where
 * secrets live and may sit next to them). Every problem is an `invalid_config` issue.
 */
export function readConfigDocument(path: string): unknown {
  const { document, issues } = readDocument(path);
  if (issues.length > 0) invalidFile(issues);
  return document;
}

function invalidFile(issues: readonly InputIssue[]): never {
  throw new CvError("invalid_config", `[sync-daemon] ${listIssues(issues)}`, { issues });
}

/**
 * The config file's TOML document and its permission problems; a file that cannot be read or
 * parsed throws, its permission problem listed too.
 */
function readDocument(path: string): { document: unknown; issues: InputIssue[] } {
  let text: string;
  let issues: InputIssue[];
  try {
    issues = permissionIssues(path, "(file)");
    text = readFileSync(path, "utf8");
  } catch (error) {
    invalidFile([
      {
        path: "(file)",
        message: `cannot read the config file ${path} (${errno(error)}): create it or pass --config <path>`,
      },
    ]);
  }
  try {
    return { document: parseToml(text), issues };
  } catch (error) {
    const where =
      error instanceof TomlError ? `line ${error.line}, column ${error.column}` : "unknown position";
    invalidFile([
      ...issues,
      { path: "(file)", message: `${path} is not valid TOML (${where}): fix the syntax there` },
    ]);
  }
}
