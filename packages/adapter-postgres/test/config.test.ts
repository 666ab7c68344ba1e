import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CvError } from "@centrovision/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPostgresSource, resolvePostgresConfig } from "../src/index.js";
import { clientOptions } from "../src/internal/client-options.js";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cv-pg-config-"));
  await writeFile(join(dir, "password"), "s3cr3t-from-file\n", { mode: 0o600 });
  await writeFile(join(dir, "empty"), "");
  await writeFile(join(dir, "ca.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function configError(input: unknown): CvError {
  try {
    resolvePostgresConfig(input);
  } catch (error) {
    expect(error).toBeInstanceOf(CvError);
    expect((error as CvError).code).toBe("invalid_config");
    return error as CvError;
  }
  throw new Error("expected invalid_config");
}

describe("config", () => {
  it("lists every problem with its path, and never echoes the url", () => {
    const error = configError({
      url: "mysql://admin:hunter2@clinic/ehr?sslmode=disable",
      port: 0,
      connectTimeoutMs: -1,
      max: 1.5,
      ssl: { mode: "verify-full", caFile: join(dir, "missing-ca.pem") },
      passwordFile: join(dir, "missing-password"),
      statementTimeoutMs: 9_000,
      bogus: true,
    });
    const paths = error.issues.map((issue) => issue.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "url",
        "port",
        "connectTimeoutMs",
        "max",
        "ssl.caFile",
        "passwordFile",
        "bogus",
      ]),
    );
    expect(error.issues.filter((issue) => issue.path === "url").map((issue) => issue.message)).toEqual(
      expect.arrayContaining(["must start with postgres://", expect.stringContaining("query options")]),
    );
    expect(error.message).toMatch(/^\[adapter-postgres\] invalid config: /);
    expect(error.message).not.toContain("hunter2");
    expect(error.message).toContain("ENOENT");
  });

  it("combination rules: url or host, host needs database and user, one password source", () => {
    expect(configError({}).issues.map((issue) => issue.path)).toEqual(["url"]);
    expect(configError({ host: "10.0.0.5" }).issues.map((issue) => issue.path)).toEqual(["database", "user"]);
    const both = configError({ url: "postgres://app:pw@10.0.0.5/ehr", host: "10.0.0.5", password: "x" });
    expect(both.issues.map((issue) => issue.path).sort()).toEqual(["host", "password"]);
    const twice = configError({
      host: "h",
      database: "d",
      user: "u",
      password: "x",
      passwordFile: join(dir, "password"),
    });
    expect(twice.issues.map((issue) => issue.path)).toEqual(["passwordFile"]);
    expect(configError({ url: "postgres://u@h/d", passwordFile: join(dir, "empty") }).issues).toEqual([
      { path: "passwordFile", message: "the file is empty" },
    ]);
  });

  it("verify-full with a missing CA file is invalid_config at ssl.caFile", () => {
    const error = configError({
      url: "postgres://app@clinic.local/ehr",
      ssl: { mode: "verify-full", caFile: join(dir, "nope.pem") },
    });
    expect(error.issues).toEqual([{ path: "ssl.caFile", message: expect.stringContaining("ENOENT") }]);
    // Also through the factory, which opens nothing when the config is bad.
    expect(() =>
      createPostgresSource({
        url: "postgres://app@clinic.local/ehr",
        ssl: { mode: "verify-full", caFile: join(dir, "nope.pem") },
      }),
    ).toThrow(expect.objectContaining({ code: "invalid_config" }));
  });

  it("a CA file only goes with verify-full; the statement timeout must be below the call deadline", () => {
    const error = configError({
      url: "postgres://app@h/d",
      ssl: { mode: "require", caFile: join(dir, "ca.pem") },
      callTimeoutMs: 1_000,
      statementTimeoutMs: 1_000,
    });
    expect(error.issues.map((issue) => issue.path).sort()).toEqual(["ssl.caFile", "statementTimeoutMs"]);
  });

  it("applies defaults, reads the password file, decodes the url, freezes the result", () => {
    const fromUrl = resolvePostgresConfig({ url: "postgresql://recep%40pc1:p%2Fw@[::1]:6432/ehr%20clinic" });
    expect(fromUrl.connection).toEqual({
      host: "::1",
      port: 6432,
      database: "ehr clinic",
      user: "recep@pc1",
      password: "p/w",
      ca: undefined,
      label: "::1:6432/ehr clinic",
    });
    expect(fromUrl.options).toMatchObject({
      id: "postgres",
      connectTimeoutMs: 2_000,
      callTimeoutMs: 5_000,
      statementTimeoutMs: 4_000,
      probeTimeoutMs: 500,
      keepAliveSec: 5,
      max: 5,
      ssl: { mode: "disable" },
    });
    expect(Object.isFrozen(fromUrl.options)).toBe(true);
    expect(Object.isFrozen(fromUrl.connection)).toBe(true);
    const fromFile = resolvePostgresConfig({
      host: "192.168.1.100",
      database: "ehr",
      user: "recepcion",
      passwordFile: join(dir, "password"),
      callTimeoutMs: 2_000,
    });
    expect(fromFile.connection).toMatchObject({ port: 5432, password: "s3cr3t-from-file" });
    expect(fromFile.options.statementTimeoutMs).toBe(1_600);
  });

  it("verify-full builds strict TLS options: CA, verification on, host name checked", () => {
    const base = {
      database: "ehr",
      user: "app",
      ssl: { mode: "verify-full" as const, caFile: join(dir, "ca.pem") },
    };
    const sslOption = (config: ReturnType<typeof resolvePostgresConfig>) => clientOptions(config, "pool").ssl;
    const named = sslOption(resolvePostgresConfig({ ...base, host: "clinic.local" }));
    expect(named).toMatchObject({
      rejectUnauthorized: true,
      servername: "clinic.local",
      ca: expect.stringContaining("BEGIN"),
    });
    const byIp = sslOption(resolvePostgresConfig({ ...base, host: "192.168.1.100" }));
    expect(byIp).toMatchObject({ rejectUnauthorized: true });
    // An IP may not be a TLS server name (SNI); the identity check still uses it.
    expect(byIp).not.toHaveProperty("servername");
    expect(typeof (byIp as { checkServerIdentity?: unknown }).checkServerIdentity).toBe("function");
    expect(sslOption(resolvePostgresConfig({ url: "postgres://a@h/d", ssl: { mode: "require" } }))).toBe(
      "require",
    );
    expect(sslOption(resolvePostgresConfig({ url: "postgres://a@h/d" }))).toBe(false);
  });

  it("session is a function read per call, never a token itself (which is not echoed)", () => {
    const token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2VjcmV0LXNpZ25hdHVyZQ";
    const error = configError({ url: "postgres://pc@h/d", session: token });
    expect(error.issues.map((issue) => issue.path)).toEqual(["session"]);
    expect(error.message).not.toContain(token);
    const resolved = resolvePostgresConfig({ url: "postgres://pc@h/d", session: () => token });
    // The person's session goes with the pool's connections only: the probe asks `select 1` as the login.
    expect(clientOptions(resolved, "pool", token).connection).toMatchObject({
      role: "authenticated",
      "centrovision.session": token,
    });
    expect(clientOptions(resolved, "probe").connection).not.toHaveProperty("role");
    expect(clientOptions(resolved, "pool").connection).not.toHaveProperty("centrovision.session");
  });

  it("creating a source never connects, so a PC can start while the server is down", async () => {
    const source = createPostgresSource({ url: "postgres://app@127.0.0.1:1/ehr", connectTimeoutMs: 500 });
    expect(source.kind).toBe("postgres");
    await expect(source.probe()).rejects.toMatchObject({ code: "unavailable" });
    await source.close();
    await source.close();
    await expect(source.probe()).rejects.toMatchObject({
      code: "unavailable",
      message: expect.stringContaining("closed"),
    });
  });
});
