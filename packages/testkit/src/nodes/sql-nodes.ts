import { randomUUID } from "node:crypto";
import postgres from "postgres";
import { applyMigrations } from "../index.js";
import { onServer, serverUrl } from "./server.js";

/** A sync node: one database with sql/ applied, on the run's server (see test/global-setup.ts). */
export interface SqlNode {
  readonly name: string;
  /** cv_sync.node.node_id */
  readonly id: string;
  /** Superuser URL. */
  readonly url: string;
  /** Superuser connection. */
  readonly sql: postgres.Sql;
  /** Closes the connection and drops the database. */
  drop(): Promise<void>;
}

/** Connects to a migrated database and names its node `name` (cv_sync_init). */
export async function openNode(name: string, url: string, drop: () => Promise<void>): Promise<SqlNode> {
  const sql = postgres(url, { max: 4, onnotice: () => {} });
  const [init] = await sql<{ node: { node_id: string } }[]>`select cv_sync_init(${name}) as node`;
  if (!init) throw new Error("cv_sync_init returned nothing");
  return {
    name,
    id: init.node.node_id,
    url,
    sql,
    async drop() {
      await sql.end();
      await drop();
    },
  };
}

/** A fresh database named after `name`, with sql/ applied. */
export async function createNode(name: string): Promise<SqlNode> {
  const database = `sync_${name}_${randomUUID().slice(0, 8)}`;
  await onServer(`create database "${database}"`);
  const url = new URL(serverUrl());
  url.pathname = `/${database}`;
  await applyMigrations(url.href);
  return openNode(name, url.href, () => onServer(`drop database "${database}" with (force)`));
}

/** The SQLSTATE `work` fails with, or undefined when it succeeds. */
export async function failureCode(work: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await work();
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
}

/** The run's server as a PostgresServer, for startLocalSupabase({ postgres }). */
export { sharedPostgres as sharedServer } from "./server.js";
