import { CvError } from "@centrovision/core";
import { describe, expect, it } from "vitest";
import { createSupabaseSource, fromPostgrest, resolveSupabaseConfig } from "../src/index.js";

const KEY = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LWtleQ.signature";

function configError(input: unknown): CvError {
  try {
    resolveSupabaseConfig(input);
  } catch (error) {
    expect(error).toBeInstanceOf(CvError);
    return error as CvError;
  }
  throw new Error("expected invalid_config");
}

describe("config", () => {
  it("applies defaults and freezes", () => {
    const config = resolveSupabaseConfig({ url: "https://abcd.supabase.co", key: KEY });
    expect(config).toMatchObject({
      id: "supabase",
      callTimeoutMs: 5_000,
      probeTimeoutMs: 800,
      pageSize: 1_000,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("lists every problem with its path, and never the key or token", () => {
    const error = configError({
      url: "ftp://abcd.supabase.co",
      key: "",
      accessToken: KEY,
      client: { not: "a client" },
      callTimeoutMs: 0,
      probeTimeoutMs: 1.5,
      pageSize: -1,
      colour: "azul",
    });
    expect(error.code).toBe("invalid_config");
    expect(error.issues.map((issue) => issue.path).sort()).toEqual([
      "accessToken",
      "callTimeoutMs",
      "client",
      "colour",
      "key",
      "pageSize",
      "probeTimeoutMs",
      "url",
    ]);
    expect(error.message).toMatch(/^\[adapter-supabase\] invalid config: /);
    expect(JSON.stringify(error)).not.toContain(KEY);
  });

  it("a missing config names url and key; the factory throws before anything is opened", () => {
    expect(configError(undefined).issues.map((issue) => issue.path)).toEqual(["(config)"]);
    expect(configError({}).issues.map((issue) => issue.path)).toEqual(["url", "key"]);
    expect(() => createSupabaseSource({ url: "not a url", key: KEY })).toThrow(
      /url: must be an http\(s\) URL/,
    );
  });
});

describe("PostgREST errors", () => {
  const context = { host: "abcd.supabase.co", table: "patients" as const };
  const cases: [string, number, string][] = [
    ["23505", 409, "constraint"],
    ["23503", 409, "constraint"],
    ["23514", 400, "constraint"],
    ["23502", 400, "constraint"],
    ["22P02", 400, "invalid_input"],
    ["22007", 400, "invalid_input"],
    ["PGRST100", 400, "invalid_input"],
    ["PGRST102", 400, "invalid_input"],
    ["PGRST204", 400, "invalid_input"],
    ["42501", 401, "unauthorized"],
    ["42501", 403, "unauthorized"],
    ["PGRST301", 401, "unauthorized"],
    ["PGRST303", 401, "unauthorized"],
    ["PGRST205", 404, "unknown"],
    ["PGRST000", 503, "unavailable"],
    ["", 502, "unavailable"],
    ["", 504, "unavailable"],
    ["", 520, "unavailable"],
    ["", 525, "unavailable"],
    ["", 530, "unavailable"],
    ["53100", 500, "unavailable"],
    ["57014", 500, "timeout"],
    ["XX000", 500, "unknown"],
  ];
  it.each(cases)("%s with HTTP %i is %s", (code, status, expected) => {
    const error = fromPostgrest(
      { code, message: 'value "Peña Güemes" is secret', details: "Key (x)=(secret)" },
      status,
      context,
    );
    expect(error.code).toBe(expected);
    expect(error.message).not.toMatch(/secret|Peña/);
  });

  it("network failures: aborts are timeouts, socket errors unavailable", () => {
    const aborted = {
      message: "AbortError: This operation was aborted",
      details: "",
      hint: "Request was aborted",
      code: "",
    };
    const refused = {
      message: "TypeError: fetch failed",
      details: "Caused by: Error: connect ECONNREFUSED (ECONNREFUSED)",
      code: "",
    };
    expect(fromPostgrest(aborted, 0, context).code).toBe("timeout");
    expect(fromPostgrest(refused, 0, context).message).toContain("(connection refused)");
  });
});
