import { parseConfig } from "@centrovision/core";
import type * as z from "zod";

/** Parses options once and freezes them; on failure lists every problem with its path. */
export function parseOptions<S extends z.ZodType>(
  what: string,
  schema: S,
  input: unknown,
): Readonly<z.output<S>> {
  return parseConfig(`[sync-engine] invalid ${what} options`, schema, input);
}
