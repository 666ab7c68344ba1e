import { readFileSync, type Stats, statSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { CvError, type InputIssue, listIssues, routerConfigSchema, zodIssues } from "@centrovision/core";
import { parse as parseToml, TomlError } from "smol-toml";
import * as z from "zod";

/** Where the config is looked for when neither `--config` nor `CENTROVISION_CONFIG` names one. */
export const DEFAULT_CONFIG_PATH = join(homedir(), ".centrovision", "config.toml");

const nonEmpty = (what: string) => z.string().min(1, `must be ${what}`);

/** Hosts a connection never leaves this PC to reach. */
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** Keys of earlier versions, refused with what to do instead of a bare "unknown option". */
const signInReplaces = z
  .never({
    error:
      "is no longer read: staff sign in in the app with their email and password, and the session is kept encrypted on this PC; remove this line",
  })
  .optional();

/**
 * `~/.centrovision/config.toml`, snake_case as TOML files usually are. Relative paths are resolved
 * against the file's folder. Secrets live in their own files (`*_file`), never in this one.
 */
export const desktopConfigSchema = z
  .object({
    /** The branch whose agenda this PC shows by default. */
    branch_id: z.guid("must be the branch's id (a UUID)"),
    supabase: z
      .object({
        url: z.url({
          protocol: /^https?$/,
          error: "must be an http(s) URL such as https://abcd.supabase.co",
        }),
        anon_key: nonEmpty("the project's anon (publishable) key"),
        access_token: signInReplaces,
        access_token_file: signInReplaces,
      })
      .strict(),
    local_server: z
      .object({
        /** `postgres://host:port/database`; user and password come from the fields below. */
        url: z
          .string()
          .refine((value) => URL.canParse(value) && /^postgres(ql)?:$/.test(new URL(value).protocol), {
            message: "must be a postgres://host:port/database URL",
          })
          .refine((value) => !URL.canParse(value) || new URL(value).password === "", {
            message: "must not contain a password: put it in a file (password_file)",
          })
          .refine((value) => !URL.canParse(value) || new URL(value).search === "", {
            message: "must not carry options (?sslmode=…): use tls and ca_file",
          }),
        user: nonEmpty("a login in the centrovision_app role"),
        password_file: nonEmpty("a path to a file holding the password"),
        /**
         * TLS to the clinic server: `verify-full` (default) checks its certificate against
         * `ca_file` (else the system's CAs) and its address; `disable` only for a server on this
         * same PC, since across the LAN patient data must travel encrypted.
         */
        tls: z.enum(["verify-full", "disable"]).default("verify-full"),
        /** PEM of the clinic's CA (setup-server.sh leaves clinic-ca.pem beside the PCs' config). */
        ca_file: nonEmpty("a path to the clinic CA's certificate (PEM)").optional(),
      })
      .strict()
      .superRefine((lan, ctx) => {
        const host = URL.canParse(lan.url) ? new URL(lan.url).hostname : "";
        if (lan.tls === "disable" && !LOOPBACK.has(host)) {
          ctx.addIssue({
            code: "custom",
            path: ["tls"],
            message:
              'may be "disable" only for a clinic server on this same PC (127.0.0.1): across the LAN use "verify-full" with ca_file',
          });
        }
        if (lan.ca_file !== undefined && lan.tls !== "verify-full") {
          ctx.addIssue({
            code: "custom",
            path: ["ca_file"],
            message: 'is only used with tls = "verify-full"',
          });
        }
      })
      .optional(),
    sqlite: z
      .object({
        path: nonEmpty("a path for the encrypted local database"),
        /** 32 raw bytes, mode 0600; created when missing (a new, empty local database follows). */
        key_file: nonEmpty("a path to the local database's key file"),
        /** `auto` keeps the key in the OS keychain when one answers; `off` uses the key file only. */
        keychain: z.enum(["auto", "off"]).default("auto"),
      })
      .strict(),
    /** Sign-in on this PC. */
    session: z
      .object({
        /** Offline sign-in on this PC is allowed this many days after a person's last online sign-in here. */
        offline_days: z.number().int("must be whole days").min(1).max(30).default(7),
        /** Wrong offline passwords in a row before the account is locked on this PC… */
        lockout_attempts: z.number().int().min(3).max(20).default(5),
        /** …for this many minutes (kept across restarts). */
        lockout_minutes: z.number().int().min(1).max(1_440).default(15),
      })
      .strict()
      .default({ offline_days: 7, lockout_attempts: 5, lockout_minutes: 15 }),
    /**
     * Failover router tuning (core's `routerConfigSchema`, camelCase keys); every key has its
     * default, so a few suffice. Parsed whole: zod refuses `.partial()` on a schema with
     * cross-field checks, and those (hedgeFloorMs ≤ hedgeMaxMs) belong at start-up too.
     */
    router: routerConfigSchema.optional(),
    server: z
      .object({
        host: z
          .literal("127.0.0.1", "must be 127.0.0.1: the backend only listens on this PC")
          .default("127.0.0.1"),
        /** 0 picks a free port. 1420 is Tauri's development port. */
        port: z.number().int().min(0).max(65_535).default(1420),
      })
      .strict()
      .default({ host: "127.0.0.1", port: 1420 }),
  })
  .strict();

export type DesktopConfigInput = z.input<typeof desktopConfigSchema>;
export type DesktopConfig = Readonly<z.output<typeof desktopConfigSchema>>;

function fail(file: string, issues: readonly InputIssue[]): never {
  throw new CvError("invalid_config", `[desktop] invalid config ${file}: ${listIssues(issues)}`, { issues });
}

/** Where {@link parseDesktopConfig} and {@link loadDesktopConfig} report what is allowed but unwise. */
export interface DesktopConfigOptions {
  /** Default: one `[desktop] warning: …` line on stderr. Warnings never carry a value. */
  warn?: (message: string) => void;
}

/** The local database's key: 32 raw bytes (`@centrovision/adapter-sqlite`). */
const KEY_BYTES = 32;

const errno = (error: unknown) => (error as NodeJS.ErrnoException).code ?? "error";

/**
 * A file another user can read is refused, as ssh refuses a private key, in the daemon's words.
 * Owner only (no group, unlike the clinic server's service group): on a PC nobody shares these.
 */
function permissionIssues(info: Stats, path: string, where: string): InputIssue[] {
  const mode = info.mode & 0o777;
  if (process.platform === "win32" || (mode & 0o077) === 0) return [];
  return [
    {
      path: where,
      message: `${path} is readable by others (mode ${mode.toString(8).padStart(4, "0")}): run chmod 600 ${path}`,
    },
  ];
}

/** A one-line secret file (`*_file`): readable, owner-only, not empty. Its content is not kept. */
function secretFileIssues(path: string, where: string, what: string): InputIssue[] {
  try {
    const permission = permissionIssues(statSync(path), path, where);
    if (permission.length > 0) return permission;
    if (readFileSync(path, "utf8").trim() !== "") return [];
    return [{ path: where, message: `${path} is empty: write the ${what} in it` }];
  } catch (error) {
    return [
      { path: where, message: `cannot read ${path} (${errno(error)}): create it, owner-only (chmod 600)` },
    ];
  }
}

/** The local database's key file: missing is fine (it is created), otherwise owner-only and a key. */
function keyFileIssues(path: string, where: string): InputIssue[] {
  let info: Stats;
  try {
    info = statSync(path);
  } catch (error) {
    if (errno(error) === "ENOENT") return [];
    return [{ path: where, message: `cannot read ${path} (${errno(error)}): make it readable by this user` }];
  }
  if (!info.isFile()) return [{ path: where, message: `${path} is not a file: name the key file` }];
  const permission = permissionIssues(info, path, where);
  if (permission.length > 0) return permission;
  if (info.size === KEY_BYTES) return [];
  return [
    {
      path: where,
      message: `${path} holds ${info.size} bytes, not a ${KEY_BYTES}-byte key: restore it from the backup of the key`,
    },
  ];
}

/** The clinic CA's certificate: readable, PEM (it is public: any permissions). */
function caFileIssues(path: string, where: string): InputIssue[] {
  try {
    if (readFileSync(path, "utf8").includes("-----BEGIN CERTIFICATE-----")) return [];
    return [
      { path: where, message: `${path} holds no PEM certificate: copy clinic-ca.pem from the clinic server` },
    ];
  } catch (error) {
    return [
      {
        path: where,
        message: `cannot read ${path} (${errno(error)}): copy clinic-ca.pem from the clinic server`,
      },
    ];
  }
}

const record = (value: unknown): Record<string, unknown> =>
  typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};

/** A path the schema accepted (a non-empty string it did not flag), resolved, or undefined. */
function givenPath(
  section: Record<string, unknown>,
  where: string,
  flagged: ReadonlySet<string>,
  at: (path: string) => string,
  key: string,
): string | undefined {
  const value = section[key];
  return typeof value === "string" && value !== "" && !flagged.has(where) ? at(value) : undefined;
}

/**
 * The files the config names and how they relate, checked on the raw document beside zod so that
 * a schema error does not hide a missing or exposed secret: every problem comes out in one pass.
 */
function fileIssues(
  input: unknown,
  at: (path: string) => string,
  flagged: ReadonlySet<string>,
): InputIssue[] {
  const issues: InputIssue[] = [];
  const lan = record(record(input).local_server);
  const password = givenPath(lan, "local_server.password_file", flagged, at, "password_file");
  if (password !== undefined) {
    issues.push(...secretFileIssues(password, "local_server.password_file", "clinic server password"));
  }
  const ca = givenPath(lan, "local_server.ca_file", flagged, at, "ca_file");
  if (ca !== undefined) issues.push(...caFileIssues(ca, "local_server.ca_file"));
  const sqlite = record(record(input).sqlite);
  const key = givenPath(sqlite, "sqlite.key_file", flagged, at, "key_file");
  if (key !== undefined && key === givenPath(sqlite, "sqlite.path", flagged, at, "path")) {
    issues.push({ path: "sqlite.key_file", message: "is the database itself: name a separate key file" });
  } else if (key !== undefined) {
    issues.push(...keyFileIssues(key, "sqlite.key_file"));
  }
  return issues;
}

/** True when `path` is inside `folder` (or is it). */
const within = (path: string, folder: string) => {
  const rest = relative(folder, path);
  return rest === "" || (!rest.startsWith("..") && !isAbsolute(rest));
};

/**
 * Validates a config object (already parsed from TOML); `baseDir` resolves relative paths. Schema,
 * cross-field and file problems are listed together in one `invalid_config` error, each with its
 * TOML path and never a value.
 */
export function parseDesktopConfig(
  input: unknown,
  baseDir: string,
  file = "config",
  options: DesktopConfigOptions = {},
): DesktopConfig {
  return validate(input, baseDir, file, options, []);
}

/** {@link parseDesktopConfig}, listing `earlier` problems (the config file's own) with the rest. */
function validate(
  input: unknown,
  baseDir: string,
  file: string,
  options: DesktopConfigOptions,
  earlier: readonly InputIssue[],
): DesktopConfig {
  const result = desktopConfigSchema.safeParse(input);
  const issues = [
    ...earlier,
    ...(result.success ? [] : zodIssues(result.error, "(config)", "unknown option")),
  ];
  const at = (path: string) => (isAbsolute(path) ? path : resolve(baseDir, path));
  issues.push(...fileIssues(input, at, new Set(issues.map((issue) => issue.path))));
  if (!result.success || issues.length > 0) fail(file, issues);
  const config = result.data;
  const { local_server: lan, sqlite } = config;
  const paths = { path: at(sqlite.path), key_file: at(sqlite.key_file) };
  if (sqlite.keychain === "off" && within(paths.key_file, dirname(paths.path))) {
    // Not refused (an existing install keeps working), but a copy or backup of the database's
    // folder then carries the key that decrypts it.
    (options.warn ?? ((message) => process.stderr.write(`[desktop] warning: ${message}\n`)))(
      `${file}: sqlite.key_file: the key file sits in the local database's folder, so a copy or backup of that folder carries its key; move it elsewhere (owner-only, e.g. ~/.centrovision/keys/) or set keychain = "auto"`,
    );
  }
  return Object.freeze({
    ...config,
    ...(lan !== undefined && {
      local_server: {
        ...lan,
        password_file: at(lan.password_file),
        ...(lan.ca_file !== undefined && { ca_file: at(lan.ca_file) }),
      },
    }),
    sqlite: { ...sqlite, ...paths },
  });
}

/** Which file to read: `--config <path>`, else `CENTROVISION_CONFIG`, else `~/.centrovision/config.toml`. */
export function configPath(argv: readonly string[], env: NodeJS.ProcessEnv): string {
  const flag = argv.indexOf("--config");
  const fromFlag = flag >= 0 ? argv[flag + 1] : undefined;
  if (flag >= 0 && fromFlag === undefined) {
    throw new CvError(
      "invalid_config",
      "[desktop] --config needs a path, e.g. --config ~/.centrovision/config.toml",
    );
  }
  return resolve(fromFlag ?? env.CENTROVISION_CONFIG ?? DEFAULT_CONFIG_PATH);
}

/**
 * Reads, checks permissions, parses TOML and validates: every problem listed with its path, the
 * config file's own permissions included.
 */
export function loadDesktopConfig(path: string, options: DesktopConfigOptions = {}): DesktopConfig {
  let text: string;
  let permission: InputIssue[];
  try {
    permission = permissionIssues(statSync(path), path, "(file)");
    text = readFileSync(path, "utf8");
  } catch (error) {
    fail(path, [
      {
        path: "(file)",
        message: `cannot read the config file ${path} (${errno(error)}): create it or pass --config <path>`,
      },
    ]);
  }
  let data: unknown;
  try {
    data = parseToml(text);
  } catch (error) {
    const where =
      error instanceof TomlError ? `line ${error.line}, column ${error.column}` : "unknown position";
    fail(path, [
      ...permission,
      { path: "(file)", message: `${path} is not valid TOML (${where}): fix the syntax there` },
    ]);
  }
  return validate(data, dirname(path), path, options, permission);
}
