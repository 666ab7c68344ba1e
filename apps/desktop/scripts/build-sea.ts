import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  cpSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { PRODUCT_VERSION } from "@centrovision/core";
import { build } from "esbuild";
import type { SeaManifest } from "../sea/bundle-url.js";
import { ensureUiBuilt } from "../src/ui-bundle.js";

const DESKTOP_DIR = fileURLToPath(new URL("../", import.meta.url));
/** `dist/packages/` at the repo root, where every package script writes (gitignored). */
const PACKAGES_DIR = fileURLToPath(new URL("../../../dist/packages/", import.meta.url));
/** The fuse Node's binary carries for its single-executable blob (Node's SEA docs). */
const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

/** `centrovision-desktop-0.1.0-linux-x64`, `…-darwin-arm64`, `…-win32-x64.exe`: Node's platform and arch names. */
export function executableName(
  version: string = PRODUCT_VERSION,
  platform: NodeJS.Platform = process.platform,
  arch: string = process.arch,
): string {
  return `centrovision-desktop-${version}-${platform}-${arch}${platform === "win32" ? ".exe" : ""}`;
}

export interface SeaBuildOptions {
  /** Where the executable goes. Default: `dist/packages/` at the repo root. */
  outDir?: string;
  /** The bundle, its files and the blob (its `app/` is emptied first). Default: `apps/desktop/dist/sea/`. */
  workDir?: string;
  log?: (line: string) => void;
}

export interface SeaBuild {
  readonly executable: string;
  /**
   * The same backend for `node <bundle>`, inside a folder laid out as the executable unpacks its
   * files (`dist/ui/`, `node_modules/sql.js/dist/sql-wasm.wasm`): the bench's same-run reference.
   */
  readonly bundle: string;
}

/** A typed slice of postject (it ships no types): Node's SEA docs inject with it. */
interface Postject {
  inject(
    file: string,
    resource: string,
    data: Buffer,
    options: { sentinelFuse: string; machoSegmentName?: string },
  ): Promise<void>;
}

function run(command: string, args: readonly string[], what: string, cwd?: string): void {
  // Without NODE_OPTIONS: a parent's (tsx's --import under vitest, say) would load into these tools too.
  const { NODE_OPTIONS: _, ...env } = process.env;
  const result = spawnSync(command, args, { encoding: "utf8", env, ...(cwd !== undefined && { cwd }) });
  if (result.status !== 0) {
    const why = result.error?.message ?? `${result.stderr}${result.stdout}`.trim();
    throw new Error(`[desktop] ${what} failed (${command} ${args.join(" ")}): ${why}`);
  }
}

/** Every file under `dir`, as `/`-separated paths relative to `root`. */
function filesUnder(root: string, dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath, entry.name)).split(sep).join("/"))
    .sort();
}

/**
 * The backend as one CommonJS file (the only format a Node 20 executable runs), workspace packages
 * and dependencies inside. `import.meta.url` is defined to `sea/bundle-url.ts`'s answer, so the
 * code finds its UI and sql.js's WebAssembly as it does in the monorepo. Any esbuild warning fails
 * the build: each one so far meant a file or module the executable would not have.
 */
async function bundle(appDir: string): Promise<{ main: string; sqlWasm: string }> {
  const main = join(appDir, "src", "backend.cjs");
  const result = await build({
    entryPoints: [join(DESKTOP_DIR, "src", "backend", "main.ts")],
    outfile: main,
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    conditions: ["@centrovision/source"],
    define: {
      "import.meta.url": "bundleUrl",
      // ws tries its optional native addons at load; an executable can load none (and Node warns
      // at the attempt), and ws works without them.
      "process.env.WS_NO_BUFFER_UTIL": '"1"',
      "process.env.WS_NO_UTF_8_VALIDATE": '"1"',
    },
    inject: [join(DESKTOP_DIR, "sea", "bundle-url.ts")],
    absWorkingDir: DESKTOP_DIR,
    metafile: true,
    logLevel: "silent",
  });
  if (result.warnings.length > 0) {
    const lines = result.warnings.map(
      (w) => `${w.location?.file ?? "?"}:${w.location?.line ?? "?"}: ${w.text}`,
    );
    throw new Error(
      `[desktop] esbuild warned while bundling the backend; fix each (or make the executable carry what it names):\n  ${lines.join("\n  ")}`,
    );
  }
  // The glue esbuild bundled and its WebAssembly must come from the same sql.js release.
  const glue = Object.keys(result.metafile.inputs).find((input) => input.endsWith("sql.js/dist/sql-wasm.js"));
  if (glue === undefined) {
    throw new Error(
      "[desktop] the bundle holds no sql.js/dist/sql-wasm.js: @centrovision/adapter-sqlite loads sql.js differently now; update scripts/build-sea.ts to ship what it reads",
    );
  }
  return { main, sqlWasm: join(DESKTOP_DIR, dirname(glue), "sql-wasm.wasm") };
}

/**
 * Builds the desktop backend as one executable for this machine's platform (Node's single
 * executable applications): this Node binary with a blob holding the bundled backend and, as
 * assets, the UI and sql.js's WebAssembly. Only linux-x64 is built and tested in this repo; the
 * macOS and Windows steps follow Node's SEA docs (apps/desktop/README.md, "Shipping the desktop").
 */
export async function buildDesktopExecutable(options: SeaBuildOptions = {}): Promise<SeaBuild> {
  const log = options.log ?? (() => {});
  const workDir = options.workDir ?? join(DESKTOP_DIR, "dist", "sea");
  const outDir = options.outDir ?? PACKAGES_DIR;
  const appDir = join(workDir, "app");
  const uiDir = await ensureUiBuilt(log);
  rmSync(appDir, { recursive: true, force: true });
  mkdirSync(appDir, { recursive: true });

  log("bundling the backend (esbuild)…");
  const { main, sqlWasm } = await bundle(appDir);
  cpSync(uiDir, join(appDir, "dist", "ui"), { recursive: true });
  const wasmTarget = join(appDir, "node_modules", "sql.js", "dist", "sql-wasm.wasm");
  mkdirSync(dirname(wasmTarget), { recursive: true });
  copyFileSync(sqlWasm, wasmTarget);

  const paths = [
    ...filesUnder(appDir, join(appDir, "dist")),
    ...filesUnder(appDir, join(appDir, "node_modules")),
  ];
  const hash = createHash("sha256");
  for (const path of paths) hash.update(`${path}\0`).update(readFileSync(join(appDir, path)));
  const manifest: SeaManifest = {
    version: PRODUCT_VERSION,
    hash: hash.digest("hex").slice(0, 12),
    files: paths.map((path) => ({ path, size: statSync(join(appDir, path)).size })),
  };
  const manifestFile = join(workDir, "manifest.json");
  writeFileSync(manifestFile, JSON.stringify(manifest));
  const blob = join(workDir, "sea-prep.blob");
  const seaConfig = join(workDir, "sea-config.json");
  // Paths relative to the work folder, where Node reads them from: the main script's path is also
  // its name in stack traces, and the executable should not carry this machine's folders.
  const fromWork = (path: string) => relative(workDir, path).split(sep).join("/");
  writeFileSync(
    seaConfig,
    JSON.stringify(
      {
        main: fromWork(main),
        output: fromWork(blob),
        disableExperimentalSEAWarning: true,
        // V8's compiled code for the bundle, made now: the executable skips compiling it at each start.
        useCodeCache: true,
        assets: {
          "manifest.json": fromWork(manifestFile),
          ...Object.fromEntries(paths.map((path) => [path, fromWork(join(appDir, path))])),
        },
      },
      null,
      2,
    ),
  );
  log("writing the blob (node --experimental-sea-config)…");
  run(process.execPath, ["--experimental-sea-config", seaConfig], "making the SEA blob", workDir);

  mkdirSync(outDir, { recursive: true });
  const executable = join(outDir, executableName());
  // Made beside it and renamed when complete: a failed build leaves no executable that looks whole.
  const partial = `${executable}.partial`;
  copyFileSync(process.execPath, partial);
  chmodSync(partial, 0o755);
  const macos = process.platform === "darwin";
  // Injecting invalidates the signature Node's macOS binary carries (not tested here).
  if (macos) run("codesign", ["--remove-signature", partial], "removing node's signature");
  log("injecting the blob (postject; LIEF's warnings about .note sections, if any, are harmless)…");
  const postject = createRequire(import.meta.url)("postject") as Postject;
  await postject.inject(partial, "NODE_SEA_BLOB", readFileSync(blob), {
    sentinelFuse: SEA_FUSE,
    ...(macos && { machoSegmentName: "NODE_SEA" }),
  });
  // macOS refuses to run an unsigned arm64 binary: sign it ad hoc (a release signs with its identity).
  if (macos) run("codesign", ["--sign", "-", partial], "signing the executable ad hoc");
  renameSync(partial, executable);
  return { executable, bundle: main };
}
