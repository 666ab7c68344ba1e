import { chmod, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createFixtures } from "@centrovision/testkit/contract";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createSqliteSource, loadSqliteKey } from "../src/index.js";
import { failure } from "./support/temp-database.js";

const fixtures = createFixtures();

describe("loadSqliteKey with a key file (no keychain)", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "cv-key-"));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("creates a 32-byte key file readable only by its owner, and reads the same key back", async () => {
    const keyFile = join(dir, "keys", "local.key");
    const first = await loadSqliteKey({ keyFile, keychain: "off" });
    expect(first).toMatchObject({ from: "file", created: true });
    expect(first.key.byteLength).toBe(32);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    const again = await loadSqliteKey({ keyFile, keychain: "off" });
    expect(again.created).toBe(false);
    expect(Buffer.from(again.key).equals(Buffer.from(first.key))).toBe(true);
  });

  it("refuses a key file other users can read, saying how to fix it", async () => {
    const keyFile = join(dir, "local.key");
    await loadSqliteKey({ keyFile, keychain: "off" });
    await chmod(keyFile, 0o644);
    const error = await failure(loadSqliteKey({ keyFile, keychain: "off" }));
    expect(error.code).toBe("invalid_config");
    expect(error.message).toContain("can be read by other users (mode 644)");
    expect(error.message).toContain(`chmod 600 ${keyFile}`);
  });

  it("refuses a key file that does not hold a 32-byte key", async () => {
    const keyFile = join(dir, "local.key");
    await writeFile(keyFile, "short", { mode: 0o600 });
    const error = await failure(loadSqliteKey({ keyFile, keychain: "off" }));
    expect(error.message).toContain("holds 5 bytes, not a 32-byte key");
  });

  it("an existing key file wins over the keychain, so the database it encrypted still opens", async () => {
    const keyFile = join(dir, "local.key");
    const made = await loadSqliteKey({ keyFile, keychain: "off" });
    const auto = await loadSqliteKey({ keyFile });
    expect(auto.from).toBe("file");
    expect(Buffer.from(auto.key).equals(Buffer.from(made.key))).toBe(true);
  });

  it("the file is unreadable without its key; a wrong key is a clear error and loses nothing", async () => {
    const { key } = await loadSqliteKey({ keyFile: join(dir, "a.key"), keychain: "off" });
    const { key: other } = await loadSqliteKey({ keyFile: join(dir, "b.key"), keychain: "off" });
    const path = join(dir, "db", "clinic.cvdb");
    const source = await createSqliteSource({ path, key });
    const branch = await source.table("branches").insert(fixtures.branch());
    await source.close();

    const error = await failure(createSqliteSource({ path, key: other }));
    expect(error.code).toBe("unauthorized");
    expect(error.message).toContain("wrong key");

    const reopened = await createSqliteSource({ path, key });
    expect(await reopened.table("branches").get(branch.id)).toEqual(branch);
    await reopened.close();
  });
});
