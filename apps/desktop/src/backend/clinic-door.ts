import type { ConnectionOptions } from "node:tls";
import { CvError, withDeadline } from "@centrovision/core";
import postgres from "postgres";

/** What the clinic server answers to an offline sign-in there (sql/0011 `cv_auth.sign_in`). */
export type ClinicSignIn =
  | {
      readonly ok: true;
      readonly token: string;
      readonly expiresAt: string;
      readonly user: { readonly id: string; readonly email: string; readonly name: string | null };
    }
  | { readonly ok: false; readonly reason: "wrong" | "locked" | "expired" | "disabled" };

/**
 * The clinic server's identity functions, reached with the PC's own login (which by itself reads no
 * EHR row). Every call opens one connection and closes it: they are rare (a sign-in, a renewal, a
 * sign-out), and one of them runs as the person (role `authenticated` with their session).
 */
export interface ClinicDoor {
  /** Which key the cloud must sign this clinic's sessions with. */
  keyId(): Promise<string>;
  signIn(email: string, password: string): Promise<ClinicSignIn>;
  /** Leaves a verifier of `password` for offline sign-ins here (needs an online session). */
  enroll(session: string, password: string): Promise<void>;
  /** Ends `session` on the clinic server. */
  signOut(session: string): Promise<void>;
}

export interface ClinicDoorOptions {
  /** The PC's login URL (password included). */
  readonly url: string;
  /** Deadline of each call, connection included. Default 3 s. */
  readonly timeoutMs?: number;
  /** TLS to the clinic server (adapter-postgres `tlsOptions`), as its data source uses. Default: none. */
  readonly ssl?: false | "require" | ConnectionOptions;
}

const REASONS = new Set(["wrong", "locked", "expired", "disabled"]);

export function createClinicDoor(options: ClinicDoorOptions): ClinicDoor {
  const timeoutMs = options.timeoutMs ?? 3_000;
  const open = (session?: string) =>
    postgres(options.url, {
      max: 1,
      ...(options.ssl !== undefined && { ssl: options.ssl }),
      connect_timeout: Math.max(1, Math.ceil(timeoutMs / 1000)),
      idle_timeout: 1,
      fetch_types: false,
      onnotice: () => {},
      connection: {
        application_name: "centrovision-desktop sign-in",
        statement_timeout: timeoutMs,
        ...(session !== undefined && { role: "authenticated", "centrovision.session": session }),
      },
    });
  const run = async <T>(
    what: string,
    session: string | undefined,
    work: (sql: postgres.Sql) => Promise<T>,
  ) => {
    const sql = open(session);
    try {
      return await withDeadline(`[desktop] the clinic server's answer to ${what}`, undefined, timeoutMs, () =>
        work(sql),
      );
    } catch (error) {
      if (error instanceof CvError) throw error;
      const code = (error as { code?: unknown }).code;
      const refused = code === "CV010" || code === "42501" || code === "28P01" || code === "28000";
      throw new CvError(
        refused ? "unauthorized" : "unavailable",
        `[desktop] the clinic server ${refused ? "refused" : "could not answer"} ${what} (${String(code ?? "no code")})`,
      );
    } finally {
      void sql.end({ timeout: 0 }).catch(() => {});
    }
  };
  return {
    keyId: () =>
      run("the key question", undefined, async (sql) => {
        const [row] = await sql<{ key_id: string | null }[]>`select cv_auth.key_id()::text as key_id`;
        if (!row?.key_id) throw new CvError("unavailable", "[desktop] the clinic server has no signing key");
        return row.key_id;
      }),
    signIn: (email, password) =>
      run("the sign-in", undefined, async (sql) => {
        const [row] = await sql<
          { r: Record<string, unknown> }[]
        >`select cv_auth.sign_in(${email}, ${password}) as r`;
        const answer = row?.r ?? {};
        if (answer.ok !== true) {
          const reason = String(answer.reason);
          return { ok: false, reason: REASONS.has(reason) ? reason : "wrong" } as ClinicSignIn;
        }
        const token = String(answer.token);
        const user = answer.user as { id: string; email: string };
        // The name in the header, read as the person (their own profile, under the policies).
        const name = await run("the profile question", token, async (asPerson) => {
          const [profile] = await asPerson<{ full_name: string }[]>`
            select full_name from public.profiles where id = auth.uid()`;
          return profile?.full_name ?? null;
        }).catch(() => null);
        return {
          ok: true,
          token,
          expiresAt: new Date(String(answer.expires_at)).toISOString(),
          user: { id: user.id, email: user.email, name },
        };
      }),
    enroll: (session, password) =>
      run("the offline sign-in enrolment", session, async (sql) => {
        await sql`select cv_auth.enroll(${password})`;
      }),
    signOut: (session) =>
      run("the sign-out", session, async (sql) => {
        await sql`select cv_auth.sign_out()`;
      }),
  };
}
