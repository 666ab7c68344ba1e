import { readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { CvError, type InputIssue, listIssues, routerConfigSchema, zodIssues } from "@centrovision/core";
import { parse as parseToml } from "smol-toml";
import * as z from "zod";

/** Where the config is looked for when neither `--config` nor `CENTROVISION_CONFIG` names one. */
export const DEFAULT_CONFIG_PATH = join(homedir(), ".centrovision", "config.toml");

const nonEmpty = (what: string) => z.string().min(1, `must be ${what}`);

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
        url: z.string().regex(/^postgres(ql)?:\/\/[^\s]+$/, "must be a postgres://host:port/database URL"),
        user: nonEmpty("a login in the centrovision_app role"),
        password_file: nonEmpty("a path to a file holding the password"),
      })
      .strict()
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
    /** Failover router tuning (core's `routerConfigSchema`, camelCase keys); defaults suit a clinic. */
    router: routerConfigSchema.partial().optional(),
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
  throw new CvError("invalid_config", `[desktop] ${file}: ${listIssues(issues)}`, { issues });
}

/**
 * A secret-bearing file another user can read is refused, as ssh refuses a private key: the file
 * holds the Supabase key and paths to the database key.
 */
export function assertPrivateFile(path: string, what: string): void {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch {
    throw new CvError("invalid_config", `[desktop] ${what} ${path} does not exist or cannot be read`);
  }
  if (process.platform !== "win32" && (mode & 0o077) !== 0) {
    throw new CvError(
      "invalid_config",
      `[desktop] ${what} ${path} can be read by other users (mode ${(mode & 0o777).toString(8)}); run: chmod 600 ${path}`,
    );
  }
}

/** Validates a config object (already parsed from TOML); `baseDir` resolves relative paths. */
export function parseDesktopConfig(input: unknown, baseDir: string, file = "config"): DesktopConfig {
  const result = desktopConfigSchema.safeParse(input);
  if (!result.success) fail(file, zodIssues(result.error, "(config)", "unknown option"));
  const config = result.data;
  const at = (path: string) => (isAbsolute(path) ? path : resolve(baseDir, path));
  const { local_server: lan, sqlite } = config;
  return Object.freeze({
    ...config,
    ...(lan !== undefined && { local_server: { ...lan, password_file: at(lan.password_file) } }),
    sqlite: { ...sqlite, path: at(sqlite.path), key_file: at(sqlite.key_file) },
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

/** Reads, checks permissions, parses TOML and validates: every problem listed with its path. */
export function loadDesktopConfig(path: string): DesktopConfig {
  assertPrivateFile(path, "the config file");
  let data: unknown;
  try {
    data = parseToml(readFileSync(path, "utf8"));
  } catch (error) {
    const where = error instanceof Error && "line" in error ? ` (line ${String(error.line)})` : "";
    throw new CvError(
      "invalid_config",
      `[desktop] ${path} is not valid TOML${where}; fix the syntax and start again`,
    );
  }
  return parseDesktopConfig(data, dirname(path), path);
}
