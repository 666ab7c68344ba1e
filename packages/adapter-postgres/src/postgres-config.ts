import { readFileSync } from "node:fs";
import { CvError, configIssues, type InputIssue, listIssues } from "@centrovision/core";
import * as z from "zod";

const millis = (fallback: number) => z.number().int().positive().max(600_000).default(fallback);
const DEFAULT_CALL_TIMEOUT_MS = 5_000;

/**
 * What a caller passes to `createPostgresSource`. Either `url`
 * (`postgres://user:password@host:port/database`) or `host` + `database` + `user`;
 * the password may come from `password`, the url, or `passwordFile` (so it stays out of config
 * files and process listings). The schema checks shape and combinations; reading the files is
 * {@link resolvePostgresConfig}'s job, so use that to validate a config completely.
 */
export const postgresConfigSchema = z
  .object({
    /** Names the source in errors and status. */
    id: z.string().min(1).default("postgres"),
    url: z
      .string()
      .min(1)
      .superRefine((url, ctx) => {
        for (const message of urlProblems(url)) ctx.addIssue({ code: "custom", message });
      })
      .optional(),
    host: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65_535).optional(),
    database: z.string().min(1).optional(),
    user: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    /** A file holding the password (trailing newline ignored), read once when the source is created. */
    passwordFile: z.string().min(1).optional(),
    /** TCP + TLS + authentication must finish within this. */
    connectTimeoutMs: millis(2_000),
    /**
     * Server-side `statement_timeout`, per statement: a reachable but slow server answers
     * `timeout` by itself. Default: 80 % of `callTimeoutMs`.
     */
    statementTimeoutMs: z.number().int().positive().max(600_000).optional(),
    /** Default deadline of a call (`CallOptions.timeoutMs` overrides it). */
    callTimeoutMs: millis(DEFAULT_CALL_TIMEOUT_MS),
    /** Default deadline of `probe()`. */
    probeTimeoutMs: millis(500),
    /** TCP keepalive idle time: a dead idle connection is noticed after about this + 10 s. */
    keepAliveSec: z.number().int().min(1).max(7_200).default(5),
    /** Idle pooled connections are closed after this. */
    idleTimeoutSec: z.number().int().min(1).max(86_400).default(30),
    /** Pool size. */
    max: z.number().int().min(1).max(100).default(5),
    ssl: z
      .object({
        mode: z.enum(["disable", "require", "verify-full"]).default("disable"),
        /** PEM file of the CA that signed the server certificate; only with `verify-full`. */
        caFile: z.string().min(1).optional(),
      })
      .strict()
      .default({ mode: "disable" }),
    /** Shown in `pg_stat_activity`, so the clinic's IT person can tell which PC holds a connection. */
    applicationName: z.string().min(1).max(63).default("centrovision"),
    /**
     * The person's clinic session (sql/0003), read before every call. While it returns a token,
     * the pool's connections run as role `authenticated` with that session, so the clinic server's
     * row-level policies decide what the person sees; when it returns another token the pool is
     * replaced; `undefined` connects as the login alone, which reads and writes no EHR row.
     */
    session: z.custom<() => string | undefined>((value) => typeof value === "function").optional(),
  })
  .strict()
  .superRefine((config, ctx) => {
    for (const { path, message } of combinationIssues(config))
      ctx.addIssue({ code: "custom", path, message });
  })
  .transform((config) => ({
    ...config,
    statementTimeoutMs: config.statementTimeoutMs ?? Math.floor(config.callTimeoutMs * 0.8),
  }));

interface Problem {
  readonly path: string[];
  readonly message: string;
}

/**
 * Rules across fields. Zod skips an object's refinements once a field failed, so
 * {@link resolvePostgresConfig} also runs this on the raw input: one run reports every problem.
 * Hence the defensive reads.
 */
function combinationIssues(input: Record<string, unknown>): Problem[] {
  const problems: Problem[] = [];
  const issue = (path: string[], message: string) => problems.push({ path, message });
  const has = (key: string) => input[key] !== undefined;
  const url = typeof input.url === "string" ? input.url : undefined;
  if (!has("url") && !has("host")) issue(["url"], "give url, or host with database and user");
  if (has("url")) {
    for (const key of ["host", "port", "database", "user"]) {
      if (has(key)) issue([key], "already given by url; give one or the other");
    }
  } else if (has("host")) {
    if (!has("database")) issue(["database"], "required with host");
    if (!has("user")) issue(["user"], "required with host");
  }
  if (has("password") && has("passwordFile"))
    issue(["passwordFile"], "give password or passwordFile, not both");
  if (url !== undefined && urlPassword(url) && (has("password") || has("passwordFile"))) {
    issue(["password"], "the url already holds a password");
  }
  // A deadline that fires first replaces the pool (it looks like a dead link); the server's own
  // timeout must fire first so a merely slow query is reported as such and the pool survives.
  const statement = input.statementTimeoutMs;
  const call = input.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  if (typeof statement === "number" && typeof call === "number" && statement >= call) {
    issue(["statementTimeoutMs"], "must be below callTimeoutMs");
  }
  const ssl = (typeof input.ssl === "object" && input.ssl !== null ? input.ssl : {}) as Record<
    string,
    unknown
  >;
  if (ssl.caFile !== undefined && ssl.mode !== "verify-full")
    issue(["ssl", "caFile"], 'is only used with mode "verify-full"');
  return problems;
}

/** The config as written by a caller (defaults optional). */
export type PostgresConfigInput = z.input<typeof postgresConfigSchema>;
/** The config after defaults. */
export type PostgresConfig = z.output<typeof postgresConfigSchema>;

/** Where and as whom to connect, with secrets loaded from their files. */
export interface ResolvedConnection {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string | undefined;
  /** PEM text of `ssl.caFile`. */
  readonly ca: string | undefined;
  /** `host:port/database`, for messages (never holds credentials). */
  readonly label: string;
}

export interface ResolvedPostgresConfig {
  readonly options: Readonly<PostgresConfig>;
  readonly connection: ResolvedConnection;
}

function urlProblems(url: string): string[] {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // The url may hold a password: describe the problem, never echo the value.
    return ["is not a URL"];
  }
  const problems: string[] = [];
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:")
    problems.push("must start with postgres://");
  if (!parsed.hostname) problems.push("needs a host");
  if (!parsed.username) problems.push("needs a user");
  if (parsed.pathname.length <= 1) problems.push("needs a database (postgres://user@host/database)");
  if (parsed.search) problems.push("must not carry query options; use the config fields (ssl, timeouts…)");
  return problems;
}

function urlPassword(url: string): boolean {
  try {
    return new URL(url).password !== "";
  } catch {
    return false;
  }
}

function readTextFile(input: unknown, path: string[], issues: InputIssue[]): string | undefined {
  if (typeof input !== "string" || input === "") return undefined;
  try {
    return readFileSync(input, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unreadable";
    issues.push({ path: path.join("."), message: `cannot read ${input} (${code})` });
    return undefined;
  }
}

function fieldOf(input: unknown, ...path: string[]): unknown {
  let value = input;
  for (const key of path)
    value = typeof value === "object" && value !== null ? (value as Record<string, unknown>)[key] : undefined;
  return value;
}

function connectionOf(
  config: PostgresConfig,
  password: string | undefined,
  ca: string | undefined,
): ResolvedConnection {
  let host = config.host ?? "";
  let port = config.port ?? 5432;
  let database = config.database ?? "";
  let user = config.user ?? "";
  let secret = password ?? config.password;
  if (config.url !== undefined) {
    const url = new URL(config.url);
    host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    port = url.port ? Number(url.port) : 5432;
    database = decodeURIComponent(url.pathname.slice(1));
    user = decodeURIComponent(url.username);
    if (url.password) secret = decodeURIComponent(url.password);
  }
  return { host, port, database, user, password: secret, ca, label: `${host}:${port}/${database}` };
}

/**
 * Parses a config once: applies defaults, reads `passwordFile` and `ssl.caFile`, and freezes the
 * result. Every problem — schema, combination and unreadable file — is reported together.
 *
 * @throws CvError `invalid_config` with one issue per problem, each with its path. Messages never
 *   contain a password or the url.
 */
export function resolvePostgresConfig(input: unknown): ResolvedPostgresConfig {
  const parsed = postgresConfigSchema.safeParse(input);
  // Cross-field rules again on the raw input, in case a field failure made zod skip them.
  const raw = typeof input === "object" && input !== null ? (input as Record<string, unknown>) : {};
  const issues: InputIssue[] = configIssues(
    parsed.success ? undefined : parsed.error,
    combinationIssues(raw),
  );
  // Files are checked even when the schema failed, so one run reports every problem.
  const passwordText = readTextFile(fieldOf(input, "passwordFile"), ["passwordFile"], issues);
  const password = passwordText?.replace(/\r?\n$/, "");
  if (password === "") issues.push({ path: "passwordFile", message: "the file is empty" });
  const ca = readTextFile(fieldOf(input, "ssl", "caFile"), ["ssl", "caFile"], issues);
  if (!parsed.success || issues.length > 0) {
    const list = listIssues(issues);
    throw new CvError("invalid_config", `[adapter-postgres] invalid config: ${list}`, { issues });
  }
  const options = Object.freeze({ ...parsed.data, ssl: Object.freeze({ ...parsed.data.ssl }) });
  return Object.freeze({ options, connection: Object.freeze(connectionOf(parsed.data, password, ca)) });
}
