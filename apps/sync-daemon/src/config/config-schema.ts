import * as z from "zod";

/**
 * A secret is never written in the TOML itself: the file names where to read it, a file
 * (`*_file`, owner-only, one line) or an environment variable (`*_env`, e.g. set by systemd's
 * `LoadCredential=`/`EnvironmentFile=`). Exactly one of the two.
 */
function secretFields<K extends string>(key: K) {
  return {
    [`${key}_file`]: z.string().min(1).optional(),
    [`${key}_env`]: z
      .string()
      .regex(/^[A-Z_][A-Z0-9_]*$/, "must be an environment variable name (A-Z, 0-9, _)")
      .optional(),
  } as Record<`${K}_file` | `${K}_env`, z.ZodOptional<z.ZodString>>;
}

/** `[section, key, required]` of every secret: exactly one of `<key>_file`/`<key>_env` (or none when optional). */
export const SECRETS = [
  ["cloud", "node_password", true],
  ["clinic", "password", true],
  ["clinic", "admin_password", false],
] as const;

const postgresUrl = z
  .string()
  .refine((value) => URL.canParse(value) && /^postgres(ql)?:$/.test(new URL(value).protocol), {
    message: "must be a postgres:// URL",
  })
  .refine((value) => !URL.canParse(value) || new URL(value).password === "", {
    message:
      "must not contain a password: put it in a file (password_file) or the environment (password_env)",
  });

const nodeSchema = z.strictObject({
  /** This clinic server's name in the sync machinery (shown in conflicts and status). */
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "must be 1-63 characters: a-z, 0-9, - and _"),
});

export const cloudSchema = z.strictObject({
  url: z.url({ protocol: /^https?$/, error: "must be the project's https:// URL" }),
  /** The project's anon (public) key, here or in a file: it opens nothing by itself. */
  anon_key: z.string().min(1, "must not be empty").optional(),
  anon_key_file: z.string().min(1).optional(),
  /**
   * The clinic server's node credential (`centrovision-sync node create` makes it): a Supabase
   * Auth user the cloud lets call the sync functions only. Its password is a secret.
   */
  node_email: z.email({
    error: (issue) =>
      issue.input === undefined
        ? "required: the node's email, as `centrovision-sync node create` printed it (run it once with the service-role key)"
        : "must be the node's email, as `centrovision-sync node create` printed it",
  }),
  ...secretFields("node_password"),
  timeout_ms: z.int().min(100).max(300_000).default(15_000),
});

const clinicSchema = z.strictObject({
  /** The daemon's own login (member of centrovision_sync), without password. */
  url: postgresUrl,
  ...secretFields("password"),
  timeout_ms: z.int().min(100).max(300_000).default(15_000),
  /** A database owner or superuser, for `init` only (migrations, the daemon's login). */
  admin_url: postgresUrl.optional(),
  ...secretFields("admin_password"),
});

const syncSchema = z.strictObject({
  interval_ms: z.int().min(1_000).max(3_600_000).default(10_000),
  /** Pause between cycles while both wake-ups are live (a change starts a cycle by itself); never below interval_ms. */
  quiet_interval_ms: z.int().min(1_000).max(3_600_000).default(30_000),
  page_size: z.int().min(1).max(50_000).default(1_000),
  snapshot_page_size: z.int().min(1).max(50_000).default(2_000),
  /** A page slower than this halves the next one (the cloud cancels API statements after 8 s). */
  page_budget_ms: z.int().min(100).max(60_000).default(3_000),
  min_backoff_ms: z.int().min(1).max(600_000).default(1_000),
  max_backoff_ms: z.int().min(1).max(3_600_000).default(60_000),
  /** How often both change logs are purged of what every peer acknowledged; 0: never (purge by hand). */
  purge_interval_minutes: z.int().min(0).max(10_080).default(60),
  /** How long an acknowledged change stays in the logs ("30 days", "12 hours"); the cloud keeps 7 days at least. */
  log_retention: z
    .string()
    .regex(/^\d{1,6} (seconds?|minutes?|hours?|days?)$/, 'a number and a unit, e.g. "30 days" or "12 hours"')
    .default("30 days"),
});

const httpSchema = z.strictObject({
  /** Health, status and metrics; 0 picks a free port (tests). */
  port: z.int().min(0).max(65_535).default(9187),
  host: z
    .string()
    .refine((host) => ["127.0.0.1", "::1", "localhost"].includes(host), {
      message:
        "must be a loopback address (127.0.0.1, ::1 or localhost): the endpoints have no authentication",
    })
    .default("127.0.0.1"),
  enabled: z.boolean().default(true),
});

const logSchema = z.strictObject({
  level: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info"),
  /** Seconds between progress lines of a long sync when not on a terminal. */
  progress_interval_s: z.int().min(1).max(3_600).default(10),
});

const pathsSchema = z.strictObject({
  /** The numbered migrations `init` applies; default: the `sql/` folder shipped with the daemon. */
  migrations_dir: z.string().min(1).optional(),
  /** Where `doctor` checks free disk space (PostgreSQL's data). */
  data_dir: z.string().min(1).default("/var/lib/postgresql"),
});

/** `/etc/centrovision/sync.toml`: see the README for an annotated example. */
export const daemonConfigSchema = z.strictObject({
  node: nodeSchema,
  cloud: cloudSchema,
  clinic: clinicSchema,
  sync: syncSchema.default(syncSchema.parse({})),
  http: httpSchema.default(httpSchema.parse({})),
  log: logSchema.default(logSchema.parse({})),
  paths: pathsSchema.default(pathsSchema.parse({})),
});

export type DaemonConfigFile = z.output<typeof daemonConfigSchema>;
