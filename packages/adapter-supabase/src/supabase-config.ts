import { CvError, configIssues, type InputIssue, listIssues } from "@centrovision/core";
import type { SupabaseClient } from "@supabase/supabase-js";
import * as z from "zod";

/**
 * The one method of a `SupabaseClient` the adapter calls, typed by supabase-js itself so a client
 * of any `Database` typing can be injected. Older or wrapped clients fit as long as `from()`
 * returns postgrest-js ≥ 2.102 builders (the adapter calls `.retry(false)` on them).
 */
export type SupabaseClientSlice = Pick<SupabaseClient, "from">;

/** A client instance, or a factory called once, on the first call that needs it. */
export type SupabaseClientInput = SupabaseClientSlice | (() => SupabaseClientSlice);

/** A user's session token, or a function returning the current one (called for every request). */
export type AccessTokenInput = string | (() => string | Promise<string>);

const millis = (fallback: number) =>
  z.number().int("must be whole milliseconds").positive().max(600_000).default(fallback);

const isClientInput = (value: unknown): value is SupabaseClientInput =>
  typeof value === "function" ||
  (typeof value === "object" && value !== null && typeof (value as { from?: unknown }).from === "function");

export const supabaseConfigSchema = z
  .object({
    /** Names the source in errors and status. */
    id: z.string().min(1).default("supabase"),
    /** The project URL, e.g. `https://abcd.supabase.co`; the REST API is `<url>/rest/v1`. */
    url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL such as https://abcd.supabase.co" }),
    /**
     * The project's anon (publishable) or service-role key. Sent as `apikey` on every request and
     * used alone by `probe()`. With a service-role key and no `accessToken`, RLS is bypassed.
     */
    key: z.string().min(1, "must be the project's anon or service-role key"),
    /** The signed-in user's session JWT (or a provider of the current one), so RLS applies. */
    accessToken: z
      .custom<AccessTokenInput>(
        (value) => (typeof value === "string" && value.length > 0) || typeof value === "function",
        "must be a non-empty token string or a function returning the current token",
      )
      .optional(),
    /** A supabase-js client to use instead of the adapter's own (it then carries its own auth). */
    client: z
      .custom<SupabaseClientInput>(isClientInput, "must be a SupabaseClient or a function returning one")
      .optional(),
    /** Default deadline of a repository call (`CallOptions.timeoutMs` overrides it). */
    callTimeoutMs: millis(5_000),
    /** Default deadline of `probe()`: below the router's probe interval, above the link's p99. */
    probeTimeoutMs: millis(800),
    /**
     * Rows asked for per request when a list needs more. Must not exceed the project's
     * `db-max-rows` (Supabase's default is 1000), which silently truncates larger pages.
     */
    pageSize: z.number().int().min(1).max(100_000).default(1_000),
  })
  .strict()
  .superRefine((config, ctx) => {
    for (const { path, message } of combinationIssues(config))
      ctx.addIssue({ code: "custom", path, message });
  });

/** What a caller passes to `createSupabaseSource`. */
export type SupabaseConfigInput = z.input<typeof supabaseConfigSchema>;

/** The config after defaults, frozen. */
export type SupabaseConfig = Readonly<z.output<typeof supabaseConfigSchema>>;

interface Problem {
  readonly path: string[];
  readonly message: string;
}

/**
 * Rules across fields. Zod skips an object's refinements once a field failed, so
 * {@link resolveSupabaseConfig} runs this on the raw input too: one run reports every problem.
 */
function combinationIssues(input: Record<string, unknown>): Problem[] {
  if (input.client !== undefined && input.accessToken !== undefined) {
    return [
      {
        path: ["accessToken"],
        message: "give accessToken or client, not both (an injected client carries its own auth)",
      },
    ];
  }
  return [];
}

/**
 * Parses a config once, applies defaults and freezes it.
 *
 * @throws CvError `invalid_config` with one issue per problem, each with its path. Zod messages
 *   describe the expectation, never the value, so neither the key nor a token reaches a log.
 */
export function resolveSupabaseConfig(input: unknown): SupabaseConfig {
  const parsed = supabaseConfigSchema.safeParse(input);
  const raw = typeof input === "object" && input !== null ? (input as Record<string, unknown>) : {};
  const issues: InputIssue[] = configIssues(
    parsed.success ? undefined : parsed.error,
    combinationIssues(raw),
  );
  if (!parsed.success || issues.length > 0) {
    const list = listIssues(issues);
    throw new CvError("invalid_config", `[adapter-supabase] invalid config: ${list}`, { issues });
  }
  return Object.freeze(parsed.data);
}
