import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { PRODUCT_VERSION, parseConnectionStatus } from "@centrovision/core";
import { type LocalSupabase, startLocalSupabase } from "@centrovision/testkit";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { executableName } from "../scripts/build-sea.js";
import { startSidecar } from "../sea/sidecar.js";
import { waitFor } from "./support.js";

const DESKTOP = fileURLToPath(new URL("../", import.meta.url));
const REPO = fileURLToPath(new URL("../../../", import.meta.url));
const USER = { email: "recepcion@sea.test", password: "recepcion-sea" };

/** `npm run package`, into a folder of its own: a fresh clone builds the UI too. */
async function buildExecutable(outDir: string, workDir: string): Promise<void> {
  const child = spawn(
    process.execPath,
    [
      "--conditions=@centrovision/source",
      "--import",
      "tsx",
      "scripts/package.ts",
      "--out",
      outDir,
      "--work",
      workDir,
    ],
    { cwd: DESKTOP, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  for (const stream of [child.stdout, child.stderr]) stream.on("data", (chunk) => (output += chunk));
  const [code] = await once(child, "exit");
  if (code !== 0) throw new Error(`npm run package failed (exit code ${code}):\n${output}`);
}

describe("the desktop as one executable, run from an empty folder", () => {
  let work: string;
  let app: string;
  let exe: string;
  let cloud: LocalSupabase;
  /** Nothing from the monorepo: the executable, its config, and folders of its own. */
  let env: NodeJS.ProcessEnv;
  const running = new Set<ChildProcess>();

  /** The executable started from its folder, as a person would (stdout read by the test). */
  function launch(args: readonly string[]) {
    const child = spawn(exe, args, { cwd: app, env, stdio: ["ignore", "pipe", "inherit"] });
    running.add(child);
    const exited = once(child, "exit").finally(() => running.delete(child));
    return { child, exited, stdout: lines(child.stdout) };
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "cv-sea-"));
    app = join(work, "app");
    const started = performance.now();
    // Both settle before a failure is thrown, so afterAll stops a cloud that did start.
    const [starting, building] = await Promise.allSettled([
      startLocalSupabase({ log: () => {} }).then((supabase) => {
        cloud = supabase;
      }),
      buildExecutable(app, join(work, "build")).then(() =>
        console.log(`[sea.test] npm run package: ${((performance.now() - started) / 1000).toFixed(1)} s`),
      ),
    ]);
    for (const outcome of [starting, building]) if (outcome.status === "rejected") throw outcome.reason;
    await cloud.createUser(USER);
    exe = join(app, executableName());
    expect(await readdir(app)).toEqual([executableName()]);
    // The config a PC would have, next to the executable; relative paths are the config folder's.
    await writeFile(
      join(app, "config.toml"),
      [
        `branch_id = "${crypto.randomUUID()}"`,
        "[supabase]",
        `url = "${cloud.url}"`,
        `anon_key = "${cloud.anonKey}"`,
        "[sqlite]",
        'path = "datos/clinica.cvdb"',
        'key_file = "local.key"',
        'keychain = "off"',
        "[server]",
        "port = 0",
        "[router]",
        "probeIntervalMs = 200",
        "suspectIntervalMs = 100",
        "downIntervalMs = 300",
        "rise = 1",
        "holdDownMs = 0",
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    await mkdir(join(app, "datos"), { mode: 0o700 });
    // A stand-in for xdg-open: records what it was asked to open, opens nothing.
    await mkdir(join(work, "bin"));
    await writeFile(join(work, "bin", "xdg-open"), '#!/bin/sh\nprintf "%s\\n" "$@" >> "$CV_OPENED"\n');
    await chmod(join(work, "bin", "xdg-open"), 0o755);
    await mkdir(join(work, "tmp"));
    env = {
      PATH: `${join(work, "bin")}:/usr/bin:/bin`,
      HOME: join(work, "home"),
      XDG_CACHE_HOME: join(work, "cache"),
      TMPDIR: join(work, "tmp"),
      CV_OPENED: join(work, "opened.txt"),
    };
  }, 300_000);

  afterAll(async () => {
    // A failed test may leave one running.
    for (const child of running) child.kill("SIGKILL");
    await cloud?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it("names no folder of the machine that built it, and prints its version", async () => {
    const binary = await readFile(exe);
    expect(binary.includes(REPO)).toBe(false);
    expect(binary.includes(work)).toBe(false);
    const { stdout, exited } = launch(["--version"]);
    const [line, [code]] = await Promise.all([stdout.next(), exited]);
    expect(line.value).toBe(`centrovision-desktop ${PRODUCT_VERSION}`);
    expect(code).toBe(0);
  });

  it("as a sidecar: one ready line, get_connection_status, sign-in on the cloud, stops when its stdin closes", async () => {
    const sidecar = await startSidecar(exe, ["--config", "config.toml"], { cwd: app, env });
    onTestFinished(async () => void (await sidecar.stop()));
    expect(sidecar).toMatchObject({
      ready: true,
      url: `http://127.0.0.1:${sidecar.port}`,
      version: PRODUCT_VERSION,
    });
    expect(sidecar.secret).toMatch(/^[\w-]{32,}$/);
    const anonymous = await fetch(`${sidecar.url}/invoke/get_connection_status`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(anonymous.status).toBe(401);
    const status = await sidecar.invoke("get_connection_status");
    expect(status.status).toBe(200);
    // Nobody signed in: no server may serve yet, so the PC works on its own copy.
    expect(parseConnectionStatus(status.body, "sea.test").mode).toBe("offline");
    const signIn = await sidecar.invoke("sign_in", USER);
    expect(signIn).toMatchObject({ status: 200, body: { signedIn: true, method: "online" } });
    await waitFor("the cloud", async () => {
      const { body } = await sidecar.invoke("get_connection_status");
      return parseConnectionStatus(body, "sea.test").mode === "supabase";
    });
    expect(await sidecar.stop()).toBe(0);
    await expect(fetch(sidecar.url)).rejects.toThrow();
  });

  it("by itself: prints its address, serves the UI from inside the executable, opens it through an owner-only page", async () => {
    const { child, exited, stdout } = launch(["--config", "config.toml"]);
    const printed = (await stdout.next()).value as string;
    const address = /^\[desktop\] listening on (http:\/\/127\.0\.0\.1:\d+)\/#acceso=([\w-]+)$/.exec(printed);
    expect(address, printed).not.toBeNull();
    const [, url, secret] = address as unknown as [string, string, string];

    const index = await fetch(`${url}/`);
    expect(index.headers.get("content-type")).toContain("text/html");
    const html = await index.text();
    expect(html).toContain('<div id="root">');
    const script = /src="\.?\/?(assets\/[^"]+\.js)"/.exec(html)?.[1];
    const code = await fetch(`${url}/${script}`);
    expect(code.status).toBe(200);
    expect(code.headers.get("content-type")).toContain("javascript");
    // Served from the executable's own files, unpacked into this user's cache.
    const [unpacked] = await readdir(join(work, "cache", "centrovision-desktop"));
    expect(unpacked).toMatch(new RegExp(`^${PRODUCT_VERSION.replaceAll(".", "\\.")}-[0-9a-f]{12}$`));
    const root = join(work, "cache", "centrovision-desktop", unpacked as string);
    expect(await readFile(join(root, "dist", "ui", "index.html"), "utf8")).toBe(html);
    expect((await stat(root)).mode & 0o777).toBe(0o700);

    // The browser gets a page in an owner-only file: the secret is on no command line.
    await waitFor("xdg-open", async () => (await readFile(env.CV_OPENED as string, "utf8")) !== "", 10_000);
    const opened = (await readFile(env.CV_OPENED as string, "utf8")).trim();
    expect(opened).not.toContain(secret);
    expect((await stat(opened)).mode & 0o777).toBe(0o600);
    expect(await readFile(opened, "utf8")).toContain(`url=${url}/#acceso=${secret}`);

    child.kill("SIGTERM");
    expect((await exited)[0]).toBe(0);
    await expect(stat(opened)).rejects.toThrow();
  });

  it("with --no-open: opens nothing", async () => {
    const { child, exited, stdout } = launch(["--config", "config.toml", "--no-open"]);
    const printed = (await stdout.next()).value as string;
    const url = /listening on (http:\/\/127\.0\.0\.1:\d+)\//.exec(printed)?.[1];
    // Answered: start-up is over, and the page for a browser would be in TMPDIR by now.
    expect((await fetch(`${url}/`)).status).toBe(200);
    expect(await readdir(env.TMPDIR as string)).toEqual([]);
    child.kill("SIGTERM");
    expect((await exited)[0]).toBe(0);
  });
});

/** The lines of a child's stdout. */
function lines(stdout: Readable): AsyncIterator<string> {
  return createInterface({ input: stdout })[Symbol.asyncIterator]();
}
