// The clinic server's Debian package: its size, and how fast its CLI starts. Builds the .deb
// (`npm run package`), unpacks it with dpkg-deb into a scratch folder (the files apt-get installs,
// without installing them), and times `--help` from those files, start to exit, against
// `node -e 0` (Node.js starting and doing nothing) in the same run, called alternately.
// Goal: the package under 1 MiB (the start-up figure is a ratio to report, with no goal of its own).
//
//   node --conditions=@centrovision/source --import tsx bench/package.bench.mjs
//
// It runs under tsx only to import reportFigure from the testkit's TypeScript source; the CLI it
// times runs from the unpacked package, in child processes without that loader.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { compareAlternately, reportFigure } from "@centrovision/testkit";

const ROUNDS = Number(process.env.CV_BENCH_RUNS ?? 10);
const app = fileURLToPath(new URL("..", import.meta.url));
const repo = join(app, "../..");

try {
  execFileSync("dpkg-deb", ["--version"], { stdio: "ignore" });
} catch {
  console.log("skipped: dpkg-deb is not installed (the package is built on Debian or Ubuntu)");
  process.exit(0);
}

const built = execFileSync(process.execPath, [join(app, "scripts/build-package.mjs")], { encoding: "utf8" });
const deb = join(repo, /^built (\S+\.deb) /m.exec(built)?.[1] ?? "");
const installedKiB = Number(execFileSync("dpkg-deb", ["-f", deb, "Installed-Size"], { encoding: "utf8" }));

reportFigure({
  figure: "centrovision-sync .deb",
  unit: "KiB",
  measured: statSync(deb).size / 1024,
  reference: { label: "installed", value: installedKiB },
  goal: { of: "measured", atMost: 1024 },
});

const unpacked = mkdtempSync(join(tmpdir(), "cv-package-bench-"));
/** Resolves when `args` has run to a zero exit; rejects otherwise. */
const run = (args) =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      stdio: "ignore",
      cwd: unpacked,
      env: { PATH: process.env.PATH },
    });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`${args.join(" ")} exited ${code}`)),
    );
  });
try {
  execFileSync("dpkg-deb", ["-x", deb, unpacked]);
  const cli = join(unpacked, "usr/lib/centrovision-sync/lib/cli.mjs");
  await compareAlternately(
    "--help from the package's files, start to exit, p50",
    "node -e 0",
    () => run([cli, "--help"]),
    () => run(["-e", "0"]),
    ROUNDS,
    2,
  );
} finally {
  rmSync(unpacked, { recursive: true, force: true });
}
