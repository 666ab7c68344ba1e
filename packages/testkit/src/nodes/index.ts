/**
 * `@centrovision/testkit/nodes`: databases and clinic rows on the run's PostgreSQL (the one a
 * package's vitest globalSetup starts with `postgresRun()`): sync nodes with sql/ applied, logins,
 * signed-in clinic persons, and one valid row per synced table.
 */
export { type ClinicPerson, type ClinicPersonOptions, clinicPerson } from "./clinic-person.js";
export {
  type Consultation,
  consultation,
  insert,
  insertConsultation,
  patient,
  type Row,
  remove,
  rowOf,
  update,
} from "./fixtures.js";
export { ensureLogin, onServer, serverUrl, sharedPostgres, syncLogin, withLogin } from "./server.js";
export { createNode, failureCode, openNode, type SqlNode, sharedServer } from "./sql-nodes.js";
