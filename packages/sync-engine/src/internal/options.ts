import { CvError } from "@centrovision/core";
import type * as z from "zod";

/** Parses options once and freezes them; on failure lists every problem with its path. */
export function parseOptions<S extends z.ZodType>(
  what: string,
  schema: S,
  input: unknown,
): Readonly<z.output<S>> {
  const result = schema.safeParse(input);
  if (result.success) return Object.freeze(result.data);
  const issues = result.error.issues.map((issue) => ({
    path: issue.path.map(String).join(".") || "(options)",
    message: issue.code === "unrecognized_keys" ? `unknown option ${issue.keys.join(", ")}` : issue.message,
  }));
  const list = issues.map((issue) => `${issue.path}: ${issue.message}`).join("; ");
  throw new CvError("invalid_config", `[sync-engine] invalid ${what} options: ${list}`, { issues });
}
