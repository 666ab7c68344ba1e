import { randomBytes } from "node:crypto";
import { asClinicPerson } from "@centrovision/testkit";
import postgres from "postgres";
import { inject } from "vitest";
import type { TestDatabase } from "./test-database.js";

/** What a statement did: its result, or the SQLSTATE it failed with. */
export type Outcome<T> = { ok: T } | { code: string };

/** Runs `work`, turning a PostgreSQL error into its SQLSTATE (anything else is rethrown). */
export async function outcome<T>(work: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: await work() };
  } catch (error) {
    const code = (error as Partial<postgres.PostgresError>).code;
    if (typeof code !== "string") throw error;
    return { code };
  }
}

/** How a client of a {@link Login} presents itself. */
export type Presenting =
  /** The login alone. */
  | { readonly as: "login" }
  /** Role `authenticated`, with no clinic session. */
  | { readonly as: "nobody" }
  /** Role `authenticated` with this clinic session (the way adapter-postgres connects). */
  | { readonly as: "person"; readonly token: string };

/**
 * A login role in one of the group roles, as a deployment creates it for a clinic PC or the sync
 * daemon, with clients of one database. Roles are cluster-wide: the name is random, and `drop()`
 * (after the database is gone) removes it.
 */
export interface Login {
  readonly name: string;
  /** A client (one connection) of the login on `db`, presenting itself as asked. */
  connect(presenting?: Presenting): postgres.Sql;
  /** Ends its clients and drops the role. */
  drop(): Promise<void>;
}

export async function createLogin(
  db: TestDatabase,
  group: "centrovision_app" | "centrovision_sync",
): Promise<Login> {
  const name = `cv_login_${randomBytes(4).toString("hex")}`;
  const password = randomBytes(12).toString("hex");
  await db.sql.unsafe(`create role ${name} login password '${password}' in role ${group}`);
  const url = new URL(db.url);
  url.username = name;
  url.password = password;
  const clients: postgres.Sql[] = [];
  return {
    name,
    connect(presenting = { as: "login" }) {
      const connection =
        presenting.as === "login"
          ? {}
          : presenting.as === "nobody"
            ? { role: "authenticated" }
            : asClinicPerson(presenting.token);
      const client = postgres(url.href, { max: 1, onnotice: () => {}, connection });
      clients.push(client);
      return client;
    },
    async drop() {
      await Promise.all(clients.map((client) => client.end()));
      const admin = postgres(inject("postgresUrl"), { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`drop role if exists ${name}`);
      } finally {
        await admin.end();
      }
    },
  };
}
