import { mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join } from "node:path";
import { getAsset, isSea } from "node:sea";
import { pathToFileURL } from "node:url";

/**
 * What `import.meta.url` reads inside the bundled backend (`scripts/build-sea.ts` defines it to this
 * export), so the code finds its files as it does in the monorepo: the UI at `<root>/dist/ui`
 * (`src/ui-bundle.ts`) and sql.js's WebAssembly through a `require.resolve` from it
 * (`@centrovision/adapter-sqlite`); `<root>/src/backend.cjs` is where the bundle stands in that
 * tree. Run as `node backend.cjs`, the bundle's build folder has that layout. In the single
 * executable those files are the blob's assets, which Node 20 hands out only as bytes
 * (`sea.getAsset`) while fs and `require.resolve` read the disk: they are unpacked into a per-user
 * cache folder laid out the same way.
 */
export const bundleUrl = isSea() ? pathToFileURL(join(unpacked(), "src", "backend.cjs")).href : thisFile();

function thisFile(): string {
  // CommonJS inside the bundle; this module is never loaded as ESM.
  return pathToFileURL(__filename).href;
}

/** `manifest.json` in the executable's blob, written by `scripts/build-sea.ts`. */
export interface SeaManifest {
  readonly version: string;
  /** Of the files' paths and contents, so an executable with other files unpacks anew. */
  readonly hash: string;
  /** Paths relative to the root, `/`-separated; each is also the file's asset key. */
  readonly files: readonly { readonly path: string; readonly size: number }[];
}

/**
 * The OS's per-user cache folder and the variable that moves it: never shared with another user,
 * and not emptied at every reboot as a temp folder is.
 */
function cacheHome(): { folder: string; variable: string } {
  if (process.platform === "win32") {
    return {
      folder: process.env.LOCALAPPDATA ?? join(homedir(), "AppData", "Local"),
      variable: "LOCALAPPDATA",
    };
  }
  if (process.platform === "darwin")
    return { folder: join(homedir(), "Library", "Caches"), variable: "HOME" };
  const xdg = process.env.XDG_CACHE_HOME;
  return {
    folder: xdg !== undefined && isAbsolute(xdg) ? xdg : join(homedir(), ".cache"),
    variable: "XDG_CACHE_HOME",
  };
}

/** Every file there with its size: a folder a cleaner emptied or a crash cut short is unpacked again. */
function complete(root: string, manifest: SeaManifest): boolean {
  try {
    return manifest.files.every((file) => statSync(join(root, file.path)).size === file.size);
  } catch {
    // Missing, or not reachable (a file where a folder should be): unpacking says which.
    return false;
  }
}

/**
 * Writes the files into a fresh folder renamed into place, so a second instance starting at the
 * same time never reads a half-written file.
 */
function unpack(root: string, manifest: SeaManifest): void {
  rmSync(root, { recursive: true, force: true });
  // Owner-only: the UI served from here runs with the launch's secret.
  mkdirSync(dirname(root), { recursive: true, mode: 0o700 });
  const staging = mkdtempSync(`${root}.partial-`);
  for (const file of manifest.files) {
    const target = join(staging, file.path);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, new Uint8Array(getAsset(file.path)));
  }
  try {
    renameSync(staging, root);
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    // Another instance renamed its copy first: the same files.
    if (!complete(root, manifest)) throw error;
  }
}

/**
 * The executable's files under `<cache>/centrovision-desktop/<version>-<hash>/`, unpacked once per
 * build (about 1 MB); later starts only compare sizes.
 */
function unpacked(): string {
  const manifest = JSON.parse(getAsset("manifest.json", "utf8")) as SeaManifest;
  const { folder, variable } = cacheHome();
  const root = join(folder, "centrovision-desktop", `${manifest.version}-${manifest.hash}`);
  if (complete(root, manifest)) return root;
  try {
    unpack(root, manifest);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    process.stderr.write(
      `[desktop] cannot unpack the UI and the SQLite engine into ${root} (${code}): make that folder writable by this user, or point ${variable} at a folder that is\n`,
    );
    process.exit(1);
  }
  return root;
}
