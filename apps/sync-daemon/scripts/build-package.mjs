// `npm run package -w centrovision-sync`: the clinic server's Debian package,
// dist/packages/centrovision-sync_<version>_<arch>.deb at the repository root.
//
// The daemon is bundled to plain JavaScript with everything it imports (the workspace packages from
// their TypeScript source, and the npm dependencies), so the server needs Node.js and nothing from
// npm: no node_modules, no checkout, no compiler at start-up. It is split at the CLI's lazy imports,
// so `--help` and `config check` still load only what they run. Not minified: a stack trace in the
// journal keeps its names and points at a readable line of /usr/lib/centrovision-sync/lib.
//
//   /usr/bin/centrovision-sync                 deploy/debian/centrovision-sync (execs node on lib/cli.mjs)
//   /usr/sbin/centrovision-setup-server        → /usr/lib/centrovision-sync/deploy/setup-server.sh
//   /usr/lib/centrovision-sync/lib/            the bundle
//   /usr/lib/centrovision-sync/sql/            the repository's sql/ (migrations, functions/)
//   /usr/lib/centrovision-sync/deploy/         setup-server.sh and the scripts it runs
//   /lib/systemd/system/centrovision-sync.service
//   /usr/share/doc/centrovision-sync/README.md
//
// Nothing under /etc: the config and secrets are setup-server.sh's, written only when missing, so
// no upgrade can replace them. Needs dpkg-deb (Debian, Ubuntu).
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  cpSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "tsup";

const app = fileURLToPath(new URL("..", import.meta.url));
const repo = join(app, "../..");
const deploy = join(app, "deploy");
const PREFIX = "usr/lib/centrovision-sync";
/** What setup-server.sh runs beside itself. */
const DEPLOY_SCRIPTS = [
  "setup-server.sh",
  "make-clinic-tls.sh",
  "set-role-password.sh",
  "postgresql-firewall.sh",
];

/** A problem the builder explains itself (printed without a stack trace). */
class PackageError extends Error {}

/**
 * The product's one version (PRODUCT_VERSION, packages/core/src/version.ts), as the bundled CLI
 * prints it, so the package is always the version its daemon says it is; written as Debian orders
 * versions: a semver pre-release (`1.2.0-rc.1`) sorts before its release with `~`, where `-` would
 * make it a Debian revision.
 */
function debianVersion(cli) {
  const product = execFileSync(process.execPath, [cli, "--version"], { encoding: "utf8" }).trim();
  const version = product.replace("-", "~");
  if (!/^[0-9][A-Za-z0-9.+~]*$/.test(version)) {
    throw new PackageError(
      `the CLI's version "${product}" is no version Debian accepts: fix PRODUCT_VERSION in packages/core/src/version.ts`,
    );
  }
  return version;
}

function architecture() {
  try {
    return execFileSync("dpkg", ["--print-architecture"], { encoding: "utf8" }).trim();
  } catch {
    throw new PackageError(
      "dpkg is not installed: the package is built on Debian or Ubuntu (apt-get install dpkg-dev)",
    );
  }
}

/** Each file's size rounded up to KiB, plus one per folder: dpkg's own estimate of Installed-Size. */
function installedKiB(dir) {
  let kib = 0;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    kib += entry.isFile() ? Math.ceil(statSync(path).size / 1024) : 1;
  }
  return kib;
}

/** 0755 for folders and the files in `executables` (paths in the package), 0644 for the rest. */
function setModes(root, executables) {
  for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    if (lstatSync(path).isSymbolicLink()) continue;
    const executable = entry.isDirectory() || executables.has(relative(root, path));
    chmodSync(path, executable ? 0o755 : 0o644);
  }
}

const out = join(repo, "dist/packages");
const stage = mkdtempSync(join(tmpdir(), "centrovision-sync-deb-"));
const root = join(stage, "root");
const copy = (from, to) => {
  mkdirSync(dirname(join(root, to)), { recursive: true });
  copyFileSync(from, join(root, to));
};

try {
  const arch = architecture();
  process.chdir(app);
  await build({
    entry: { cli: "src/cli/main.ts" },
    outDir: join(root, PREFIX, "lib"),
    format: ["esm"],
    platform: "node",
    target: "node20",
    splitting: true,
    sourcemap: false,
    dts: false,
    config: false,
    silent: true,
    noExternal: [/./],
    outExtension: () => ({ js: ".mjs" }),
    // The CommonJS dependencies (pino, commander…) call require(): give the ES module bundle one.
    banner: {
      js: 'import { createRequire as __cvCreateRequire } from "node:module";\nconst require = __cvCreateRequire(import.meta.url);',
    },
    esbuildOptions(options) {
      options.conditions = ["@centrovision/source"];
    },
  });

  const version = debianVersion(join(root, PREFIX, "lib/cli.mjs"));
  cpSync(join(repo, "sql"), join(root, PREFIX, "sql"), {
    recursive: true,
    filter: (path) => statSync(path).isDirectory() || path.endsWith(".sql"),
  });
  for (const script of DEPLOY_SCRIPTS) copy(join(deploy, script), `${PREFIX}/deploy/${script}`);
  copy(join(deploy, "debian/centrovision-sync"), "usr/bin/centrovision-sync");
  mkdirSync(join(root, "usr/sbin"));
  symlinkSync(
    `../lib/centrovision-sync/deploy/setup-server.sh`,
    join(root, "usr/sbin/centrovision-setup-server"),
  );
  copy(join(deploy, "centrovision-sync.service"), "lib/systemd/system/centrovision-sync.service");
  copy(join(app, "README.md"), "usr/share/doc/centrovision-sync/README.md");
  setModes(
    root,
    new Set(["usr/bin/centrovision-sync", ...DEPLOY_SCRIPTS.map((s) => `${PREFIX}/deploy/${s}`)]),
  );

  const control = readFileSync(join(deploy, "debian/control"), "utf8")
    .replace("@VERSION@", version)
    .replace("@ARCH@", arch)
    .replace("@INSTALLED_SIZE@", String(installedKiB(root)));
  mkdirSync(join(root, "DEBIAN"), { mode: 0o755 });
  writeFileSync(join(root, "DEBIAN/control"), control, { mode: 0o644 });
  for (const script of ["postinst", "prerm", "postrm"]) {
    copyFileSync(join(deploy, "debian", script), join(root, "DEBIAN", script));
    chmodSync(join(root, "DEBIAN", script), 0o755);
  }

  mkdirSync(out, { recursive: true });
  const deb = join(out, `centrovision-sync_${version}_${arch}.deb`);
  // Owned by root whoever builds it; xz, which every dpkg since Debian 6 reads.
  execFileSync("dpkg-deb", ["--build", "--root-owner-group", "-Zxz", root, deb], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  console.log(`built ${relative(repo, deb)} (${Math.round(statSync(deb).size / 1024)} KiB)`);
} catch (error) {
  if (!(error instanceof PackageError)) throw error;
  console.error(`[sync-daemon] package: ${error.message}`);
  process.exitCode = 1;
} finally {
  rmSync(stage, { recursive: true, force: true });
}
