import { randomUUID } from "node:crypto";
import type postgres from "postgres";
import { clinicSession } from "../index.js";

/**
 * A person working at a clinic server, as a PC signs them in: a `profiles` row and memberships
 * (`user_branches`), written by the owner as the sync daemon would bring them from the cloud
 * (profiles has no FK to auth.users on either tier), and a clinic session minted with that
 * database's own key. A PC login (centrovision_app) acts as them with `session: person.session`,
 * or `connection: asClinicPerson(person.token)` for a raw postgres client.
 */
export interface ClinicPerson {
  readonly userId: string;
  /** The clinic session (sql/0003), valid for an hour. */
  readonly token: string;
  /** For the `session` options of createPostgresSource / createClientApplier. */
  readonly session: () => string;
  /** Lists the person at more branches (which must exist). */
  admit(...branchIds: readonly string[]): Promise<void>;
}

export interface ClinicPersonOptions {
  /** Default: a fresh id. The same id as a cloud user makes them one person on both tiers. */
  readonly userId?: string;
  /** Branches the person works at from the start. */
  readonly branches?: readonly string[];
  /** Also the admin role (branch configuration: branches, rooms). */
  readonly admin?: boolean;
  readonly fullName?: string;
}

/** `owner` is the database's owner or a superuser: its URL (to read the key) and a connection. */
export async function clinicPerson(
  owner: { readonly url: string; readonly sql: postgres.Sql },
  options: ClinicPersonOptions = {},
): Promise<ClinicPerson> {
  const userId = options.userId ?? randomUUID();
  const { sql } = owner;
  await sql`insert into profiles (id, full_name) values (${userId}, ${options.fullName ?? "Recepción"})`;
  if (options.admin) {
    await sql`insert into user_roles (id, user_id, role) values (${randomUUID()}, ${userId}, 'admin')`;
  }
  const admit = async (...branchIds: readonly string[]) => {
    for (const branchId of branchIds) {
      await sql`insert into user_branches (id, user_id, branch_id) values (${randomUUID()}, ${userId}, ${branchId})`;
    }
  };
  await admit(...(options.branches ?? []));
  const token = await clinicSession(owner.url, { userId });
  return { userId, token, session: () => token, admit };
}
