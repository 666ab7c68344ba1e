export { type BenchFigure, compareAlternately, failsWith, longOrShort, reportFigure } from "./bench.js";
export {
  asClinicPerson,
  type ClinicSessionOptions,
  clinicSession,
  signClinicToken,
} from "./clinic-session.js";
export {
  type CreateLinkOptions,
  createLink,
  type Link,
  type LinkMode,
  type LinkPhase,
  type LinkStats,
  type LinkTarget,
} from "./link.js";
export {
  type CreateUserOptions,
  type LocalSupabase,
  type StartLocalSupabaseOptions,
  shapeSupabaseDatabase,
  startLocalSupabase,
} from "./local-supabase.js";
export {
  type ApplyMigrationsOptions,
  applyMigrations,
  MIGRATIONS_DIR,
  type Migration,
  readMigrations,
} from "./migrations.js";
export { createNodeDatabase } from "./node-database.js";
export {
  freePort,
  makeTestTls,
  type PostgresServer,
  runningPostgres,
  type StartPostgresOptions,
  startPostgres,
  type TestTls,
} from "./postgres.js";
export { pick, seededRandom, testSeeds } from "./random.js";
export { GATEWAY_UPGRADE_CHANNEL, type GatewayUpgradeRecord } from "./supabase/gateway-stats.js";
export {
  type CreateKeysOptions,
  createSupabaseKeys,
  type MintOptions,
  type SupabaseKeys,
} from "./supabase/jwt.js";
export { SUPABASE_SUPERUSER } from "./supabase/shape.js";
export {
  generateSigningKey,
  type JsonWebKeySet,
  type PublicSigningJwk,
  type SigningKey,
} from "./supabase/signing-key.js";
export { postgresRun, type RunExtras } from "./vitest-run.js";
