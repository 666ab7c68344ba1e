export {
  type AccessTokenInput,
  resolveSupabaseConfig,
  type SupabaseClientInput,
  type SupabaseClientSlice,
  type SupabaseConfig,
  type SupabaseConfigInput,
  supabaseConfigSchema,
} from "./supabase-config.js";
export { type ErrorContext, fromPostgrest, fromThrown, type PostgrestErrorLike } from "./supabase-errors.js";
export { createSupabaseSource, SUPABASE_CAPABILITIES } from "./supabase-source.js";
