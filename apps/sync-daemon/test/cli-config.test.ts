import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type CvError, isCvError, PRODUCT_VERSION } from "@centrovision/core";
import { beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/index.js";
import { type TestClinic, useTestClinic } from "./support/clinic.js";

const stack = useTestClinic("all");
let clinic: TestClinic;
beforeAll(async () => {
  clinic = stack.current();
});

const cli = stack.cli;

function writeToml(text: string, mode = 0o600): void {
  writeFileSync(clinic.configPath, text, { mode });
  chmodSync(clinic.configPath, mode);
}

describe("--version", () => {
  it("prints the product's one version", async () => {
    const result = await cli("--version");
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${PRODUCT_VERSION}\n`);
  });
});

describe("config check", () => {
  it("accepts a valid config and prints no secret", async () => {
    clinic.writeConfig();
    const result = await cli("config", "check");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      /^config ok: node clinic-[0-9a-f]+, cloud 127\.0\.0\.1:\d+, clinic cv_daemon_/,
    );
    expect(result.stdout).not.toMatch(/pw-|eyJ/);
  });

  it("lists every problem with its TOML path and exits 78", async () => {
    writeToml(`
[node]
name = "Clínica Roma!"

[cloud]
url = "ftp://example.com"
anon_key = "public"
anon_key_file = "anon_key"
node_password_file = "key"
node_password_env = "CV_KEY"

[clinic]
url = "postgres://cv:secret-in-url@10.0.0.5/clinic"
timeout_ms = "fast"

[sync]
interval_ms = 10
colour = "blue"

[http]
host = "0.0.0.0"
`);
    const result = await cli("config", "check");
    expect(result.code).toBe(78);
    const lines = result.stderr.split("\n");
    for (const path of [
      "node.name",
      "cloud.url",
      "cloud.anon_key_file: give anon_key or anon_key_file, not both",
      "cloud.node_email: required: the node's email",
      "cloud.node_password_env: give node_password_file or node_password_env, not both",
      "clinic.url: must not contain a password",
      "clinic.password_file: required",
      "clinic.timeout_ms",
      "sync.interval_ms",
      "sync.colour: unknown setting",
      "http.host: must be a loopback address",
    ]) {
      expect(
        lines.some((line) => line.trim().startsWith(path)),
        `${path} in\n${result.stderr}`,
      ).toBe(true);
    }
    expect(result.stderr).not.toContain("secret-in-url");
  });

  it("lists secret files missing or readable by others and the config file's own mode with the schema's problems, in one pass", async () => {
    clinic.writeConfig('colour = "blue"');
    const text = readFileSync(clinic.configPath, "utf8");
    writeToml(
      text
        .replace('node_password_file = "node_password"', 'node_password_file = "missing_node_password"')
        .replace(/^url = "postgres:\/\/([^@/]+)@/m, 'url = "postgres://$1:secret-in-url@'),
      0o644,
    );
    chmodSync(join(clinic.dir, "db_password"), 0o604);
    const result = await cli("config", "check");
    expect(result.code).toBe(78);
    const lines = result.stderr.split("\n").map((line) => line.trim());
    for (const expected of [
      /^\(file\): .*sync\.toml is readable by others \(mode 0644\): run chmod 600/,
      /^log\.colour: unknown setting$/,
      /^clinic\.url: must not contain a password/,
      /^cloud\.node_password_file: cannot read .*missing_node_password \(ENOENT\): create it, owner-only/,
      /^clinic\.password_file: .*db_password is readable by others \(mode 0604\): run chmod 600/,
    ]) {
      expect(
        lines.some((line) => expected.test(line)),
        `${expected} in\n${result.stderr}`,
      ).toBe(true);
    }
    expect(lines.filter((line) => /^[a-z(][a-z_.()]*: /.test(line))).toHaveLength(5);
    expect(result.stdout + result.stderr).not.toMatch(/secret-in-url|pw-|at .*\.ts:\d+/);
    expect(result.stdout + result.stderr).not.toContain(clinic.node.password);
  });

  // In-process from here on (loadConfig is what every command calls first): the CLI's part, exit
  // 78 and one line per issue, is proven above.
  const issuesOf = (env: Record<string, string> = {}) => {
    try {
      loadConfig(clinic.configPath, { env });
    } catch (error) {
      expect(isCvError(error, "invalid_config")).toBe(true);
      return (error as CvError).issues.map((issue) => `${issue.path}: ${issue.message}`);
    }
    return [];
  };

  it("names missing secret files and unset variables, each with its path", () => {
    clinic.writeConfig();
    const text = readFileSync(clinic.configPath, "utf8");
    writeToml(
      text
        .replace('node_password_file = "node_password"', 'node_password_env = "CV_TEST_UNSET_KEY"')
        .replace('password_file = "db_password"', 'password_file = "missing_password"'),
    );
    const issues = issuesOf();
    expect(issues).toContainEqual(
      expect.stringMatching(/^cloud\.node_password_env: environment variable CV_TEST_UNSET_KEY is not set/),
    );
    expect(issues).toContainEqual(
      expect.stringMatching(/^clinic\.password_file: cannot read .*missing_password \(ENOENT\)/),
    );
  });

  it("reads a secret from the environment", () => {
    clinic.writeConfig();
    const text = readFileSync(clinic.configPath, "utf8");
    writeToml(text.replace('password_file = "db_password"', 'password_env = "CV_TEST_DB_PASSWORD"'));
    expect(issuesOf({ CV_TEST_DB_PASSWORD: "x" })).toEqual([]);
    expect(
      decodeURIComponent(
        new URL(loadConfig(clinic.configPath, { env: { CV_TEST_DB_PASSWORD: "s3cr+t" } }).clinic.url)
          .password,
      ),
    ).toBe("s3cr+t");
  });

  it("refuses a config file or a secret file readable by others", async () => {
    clinic.writeConfig();
    chmodSync(clinic.configPath, 0o644);
    const open = await cli("config", "check");
    expect(open.code).toBe(78);
    expect(open.stderr).toMatch(/sync\.toml is readable by others \(mode 0644\): run chmod 600/);
    clinic.writeConfig();
    chmodSync(join(clinic.dir, "db_password"), 0o604);
    const secret = await cli("config", "check");
    expect(secret.code).toBe(78);
    expect(secret.stderr).toMatch(/clinic\.password_file: .*db_password is readable by others/);
  });

  it("refuses a [cloud] without node_email or anon key, and a node password file others may read", async () => {
    clinic.writeConfig();
    const text = readFileSync(clinic.configPath, "utf8");
    writeToml(text.replace(/^node_email = .*\n/m, "").replace(/^anon_key = .*\n/m, ""));
    const missing = await cli("config", "check");
    expect(missing.code).toBe(78);
    expect(missing.stderr).toMatch(
      /cloud\.node_email: required: the node's email, as `centrovision-sync node create` printed it/,
    );
    expect(missing.stderr).toContain("cloud.anon_key: required: the project's anon (public) key");
    clinic.writeConfig();
    chmodSync(join(clinic.dir, "node_password"), 0o644);
    const open = await cli("config", "check");
    expect(open.code).toBe(78);
    expect(open.stderr).toMatch(
      /cloud\.node_password_file: .*node_password is readable by others \(mode 0644\): run chmod 600/,
    );
    expect(open.stdout + open.stderr).not.toContain(clinic.node.password);
    chmodSync(join(clinic.dir, "node_password"), 0o600);
    writeToml(text.replace(/^anon_key = .*$/m, 'anon_key_file = "missing_anon_key"'));
    expect(issuesOf()).toContainEqual(
      expect.stringMatching(
        /^cloud\.anon_key_file: cannot read .*missing_anon_key \(ENOENT\): put the project's anon key in it/,
      ),
    );
  });

  it("reports a TOML syntax error with its position, and a missing file", () => {
    writeToml('[node]\nname = "a"\n[cloud\n');
    expect(issuesOf()).toContainEqual(expect.stringMatching(/not valid TOML \(line 3, column \d+\)/));
    expect(() => loadConfig(join(clinic.dir, "nope.toml"))).toThrow(
      /cannot read the config file .*nope\.toml \(ENOENT\): create it or pass --config/,
    );
  });
});
