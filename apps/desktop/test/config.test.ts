import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CvError } from "@centrovision/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dayRange } from "../src/backend/day-range.js";
import { configPath, DEFAULT_CONFIG_PATH, loadDesktopConfig } from "../src/config.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "cv-desktop-config-"));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

async function file(text: string, mode = 0o600): Promise<string> {
  const path = join(dir, "config.toml");
  await writeFile(path, text);
  await chmod(path, mode);
  return path;
}

function failure(run: () => unknown): CvError {
  try {
    run();
  } catch (error) {
    if (error instanceof CvError) return error;
    throw error;
  }
  throw new Error("expected a CvError");
}

const GOOD = `
branch_id = "6f0e0f7c-3f3e-4c2b-9d7e-1c2b3a4d5e6f"
[supabase]
url = "https://abcd.supabase.co"
anon_key = "anon"
[local_server]
url = "postgres://192.168.1.100:5432/centrovision"
user = "recepcion_pc1"
password_file = "secrets/db-password"
[sqlite]
path = "local/clinic.cvdb"
key_file = "/etc/centrovision/local.key"
[router]
holdDownMs = 20000
`;

describe("config.toml", () => {
  it("parses, fills defaults and resolves relative paths against the file's folder", async () => {
    const config = loadDesktopConfig(await file(GOOD));
    expect(config.server).toEqual({ host: "127.0.0.1", port: 1420 });
    expect(config.local_server?.password_file).toBe(join(dir, "secrets/db-password"));
    expect(config.sqlite).toEqual({
      path: join(dir, "local/clinic.cvdb"),
      key_file: "/etc/centrovision/local.key",
      keychain: "auto",
    });
    expect(config.router).toMatchObject({ holdDownMs: 20_000, rise: 3 });
    expect(config.session).toEqual({ offline_days: 7, lockout_attempts: 5, lockout_minutes: 15 });
  });

  it("refuses the session-token keys of earlier versions, saying sign-in replaces them, with every other problem", async () => {
    const path = await file(
      `${GOOD.replace('anon_key = "anon"', 'anon_key = "anon"\naccess_token = "eyJhbGciOi"\naccess_token_file = "session.jwt"')}\n[session]\noffline_days = 45\n`,
    );
    const refused = failure(() => loadDesktopConfig(path));
    expect(refused.code).toBe("invalid_config");
    expect(refused.issues.map((i) => i.path).sort()).toEqual([
      "session.offline_days",
      "supabase.access_token",
      "supabase.access_token_file",
    ]);
    expect(refused.issues.find((i) => i.path === "supabase.access_token")?.message).toMatch(
      /no longer read: staff sign in in the app/,
    );
    expect(refused.message).not.toMatch(/eyJhbGciOi|session\.jwt/);
  });

  it("lists every problem with its path, without echoing values", async () => {
    const missing = failure(() => loadDesktopConfig(join(dir, "missing.toml")));
    expect(missing.message).toMatch(/does not exist or cannot be read/);
    const path = await file(
      `branch_id = "sucursal-centro"\n[supabase]\nurl = "ftp://x"\n[sqlite]\npath = ""\ncolour = "red"\n[router]\nfall = 0\n`,
    );
    const bad = failure(() => loadDesktopConfig(path));
    expect(bad.code).toBe("invalid_config");
    expect(bad.issues.map((i) => i.path).sort()).toEqual(
      [
        "branch_id",
        "router.fall",
        "sqlite.colour",
        "sqlite.key_file",
        "sqlite.path",
        "supabase.anon_key",
        "supabase.url",
      ].sort(),
    );
    expect(bad.message).not.toMatch(/sucursal-centro|ftp:\/\/x/);
  });

  it("refuses a file other users can read, saying how to fix it", async () => {
    const open = await file(GOOD, 0o644);
    const refused = failure(() => loadDesktopConfig(open));
    expect(refused.code).toBe("invalid_config");
    expect(refused.message).toMatch(/can be read by other users \(mode 644\); run: chmod 600/);
  });

  it("names a TOML syntax error's line", async () => {
    const broken = await file(`branch_id = "x"\n[supabase\n`);
    expect(failure(() => loadDesktopConfig(broken)).message).toMatch(/is not valid TOML \(line 2\)/);
  });

  it("is found through --config, then CENTROVISION_CONFIG, then ~/.centrovision/config.toml", () => {
    expect(configPath(["--config", "/etc/cv.toml"], { CENTROVISION_CONFIG: "/x.toml" })).toBe("/etc/cv.toml");
    expect(configPath([], { CENTROVISION_CONFIG: "/x.toml" })).toBe("/x.toml");
    expect(configPath([], {})).toBe(DEFAULT_CONFIG_PATH);
    expect(failure(() => configPath(["--config"], {})).message).toMatch(/--config needs a path/);
  });
});

describe("dayRange", () => {
  it("is a branch's local day in UTC, including DST days", () => {
    expect(dayRange("2026-11-30", "America/Mexico_City")).toEqual({
      gte: "2026-11-30T06:00:00.000Z",
      lt: "2026-12-01T06:00:00.000Z",
    });
    // Madrid springs forward on 2026-03-29: a 23-hour day.
    expect(dayRange("2026-03-29", "Europe/Madrid")).toEqual({
      gte: "2026-03-28T23:00:00.000Z",
      lt: "2026-03-29T22:00:00.000Z",
    });
  });
});
