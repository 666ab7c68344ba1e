import { createHash, randomBytes } from "node:crypto";
import { copyFile, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createFixtures } from "@centrovision/testkit/contract";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createSqliteSource, openSqliteReadOnly, type SqliteSource } from "../src/index.js";
import { failure, tempDatabase } from "./support/temp-database.js";

const fixtures = createFixtures();
const sha = async (path: string) =>
  createHash("sha256")
    .update(await readFile(path))
    .digest("hex");

describe("crash recovery and damaged files", () => {
  let db: Awaited<ReturnType<typeof tempDatabase>>;
  let source: SqliteSource;
  const extraDirs: string[] = [];

  beforeEach(async () => {
    db = await tempDatabase();
    source = await createSqliteSource({ path: db.path, key: db.key });
  });
  afterEach(async () => {
    await source.close().catch(() => {});
    await Promise.all([
      db.remove(),
      ...extraDirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })),
    ]);
  });

  /** What a kill -9 right now would leave: the snapshot and journal as they are on disk, no lock holder. */
  async function crashImage(journalFrom = `${db.path}-journal`): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), "cv-sqlite-crash-"));
    extraDirs.push(dir);
    const path = join(dir, "clinic.cvdb");
    await copyFile(db.path, path);
    await copyFile(journalFrom, `${path}-journal`);
    return path;
  }

  async function writePatients(count: number) {
    const branch = await source.table("branches").insert(fixtures.branch());
    const rows = [];
    for (let i = 0; i < count; i++)
      rows.push(await source.table("patients").insert(fixtures.patient(branch.id)));
    return rows;
  }

  it("replays the journal after a crash into exactly the rows that were acknowledged", async () => {
    const rows = await writePatients(5);
    const updated = await source
      .table("patients")
      .update(rows[0]?.id as string, { notes: "Alergia a la penicilina" });
    const reopened = await createSqliteSource({ path: await crashImage(), key: db.key });
    try {
      expect(reopened.recovery).toEqual({ replayedRecords: 7, discardedTail: null });
      // Same versions and timestamps, not re-stamped: replay is deterministic.
      expect(await reopened.table("patients").get(updated.id)).toEqual(updated);
      expect(await reopened.table("patients").list()).toEqual(await source.table("patients").list());
    } finally {
      await reopened.close();
    }
  });

  it("recovers up to the last whole record when the journal tail is torn, keeping the tail aside", async () => {
    const rows = await writePatients(4);
    const path = await crashImage();
    const journal = `${path}-journal`;
    const full = (await stat(journal)).size;
    await truncate(journal, full - 10);
    const reopened = await createSqliteSource({ path, key: db.key });
    try {
      const tail = reopened.recovery.discardedTail;
      expect(tail?.reason).toMatch(/record 5 is torn/);
      expect(reopened.recovery.replayedRecords).toBe(4);
      expect((await readFile(tail?.savedAs as string)).length).toBe(tail?.bytes);
      const ids = (await reopened.table("patients").list()).map((row) => row.id);
      expect(ids.sort()).toEqual(
        rows
          .slice(0, 3)
          .map((row) => row.id)
          .sort(),
      );
      // New writes follow the last good record and survive another crash.
      const next = await reopened.table("patients").insert(fixtures.patient(rows[0]?.branch_id as string));
      const reader = await openSqliteReadOnly(path, db.key);
      expect(reader.tailProblem).toBeNull();
      expect(reader.all("SELECT id FROM patients WHERE id = ?", [next.id])).toHaveLength(1);
      reader.close();
    } finally {
      await reopened.close();
    }
  });

  it("stops at a flipped byte inside a record instead of replaying damaged data", async () => {
    await writePatients(3);
    const path = await crashImage();
    const journal = `${path}-journal`;
    const bytes = await readFile(journal);
    bytes[bytes.length - 40] = (bytes[bytes.length - 40] ?? 0) ^ 0xff;
    await writeFile(journal, bytes);
    const reader = await openSqliteReadOnly(path, db.key);
    expect(reader.tailProblem).toMatch(/record 4 is damaged \(checksum mismatch\)/);
    expect(reader.replayedRecords).toBe(3);
    reader.close();
  });

  it("skips a journal already folded into a newer snapshot (crash between the two renames)", async () => {
    const rows = await writePatients(3);
    const oldJournal = join(db.dir, "journal-before-snapshot");
    await copyFile(`${db.path}-journal`, oldJournal);
    await source.snapshot();
    const path = await crashImage(oldJournal);
    const reopened = await createSqliteSource({ path, key: db.key });
    try {
      expect(reopened.recovery.replayedRecords).toBe(0);
      expect(await reopened.table("patients").get(rows[2]?.id as string)).toEqual(rows[2]);
    } finally {
      await reopened.close();
    }
  });

  it("refuses a damaged snapshot with a clear error and leaves every file byte for byte", async () => {
    await writePatients(2);
    await source.snapshot();
    await source.close();
    const prevHash = await sha(`${db.path}.prev`);
    const damages: [string, (bytes: Buffer) => Buffer, RegExp][] = [
      [
        "flipped byte",
        (b) => Buffer.concat([b.subarray(0, 5000), Buffer.from([(b[5000] ?? 0) ^ 1]), b.subarray(5001)]),
        /failed authentication/,
      ],
      ["truncated", (b) => b.subarray(0, b.length - 100), /truncated/],
      ["short file", (b) => b.subarray(0, 40), /truncated \(40 bytes/],
      [
        "wrong magic",
        (b) => Buffer.concat([Buffer.from("SQLite f"), b.subarray(8)]),
        /not a CentroVision database file/,
      ],
      [
        "header bit",
        (b) => Buffer.concat([b.subarray(0, 30), Buffer.from([(b[30] ?? 0) ^ 4]), b.subarray(31)]),
        /header is damaged/,
      ],
    ];
    const original = await readFile(db.path);
    for (const [what, damage, problem] of damages) {
      await writeFile(db.path, damage(original));
      const before = await sha(db.path);
      const error = await failure(createSqliteSource({ path: db.path, key: db.key }));
      expect(error.code, what).toBe("unavailable");
      expect(error.message, what).toContain(db.path);
      expect(error.message, what).toMatch(problem);
      expect(error.message, what).toContain("Nothing was changed on disk");
      expect(error.message, what).toContain(`${db.path}.prev`);
      expect(await sha(db.path), what).toBe(before);
      expect(await sha(`${db.path}.prev`), what).toBe(prevHash);
    }
    await writeFile(db.path, original);
    source = await createSqliteSource({ path: db.path, key: db.key });
  });

  it("keeps the previous generation as .prev, itself a readable snapshot", async () => {
    const [first] = await writePatients(1);
    await source.snapshot();
    await source.table("patients").update(first?.id as string, { first_name: "Renata" });
    await source.snapshot();
    const dir = await mkdtemp(join(tmpdir(), "cv-sqlite-prev-"));
    extraDirs.push(dir);
    await copyFile(`${db.path}.prev`, join(dir, "clinic.cvdb"));
    const reader = await openSqliteReadOnly(join(dir, "clinic.cvdb"), db.key);
    expect(reader.all("SELECT first_name FROM patients")).toEqual([{ first_name: first?.first_name }]);
    reader.close();
  });

  it("says 'wrong key' for an intact file opened with another key", async () => {
    await writePatients(1);
    await source.close();
    const other = randomBytes(32);
    for (const open of [
      () => createSqliteSource({ path: db.path, key: other }),
      () => openSqliteReadOnly(db.path, other),
    ]) {
      const error = await failure(open());
      expect(error.code).toBe("unauthorized");
      expect(error.message).toContain(`wrong key for ${db.path}`);
    }
    source = await createSqliteSource({ path: db.path, key: db.key });
  });

  it("never writes patient data in plaintext, in any file it leaves", async () => {
    const branch = await source.table("branches").insert(fixtures.branch());
    await source
      .table("patients")
      .insert(fixtures.patient(branch.id, { last_name: "Zacarías Quiñónez", document_id: "CURPSECRETO123" }));
    await source.snapshot();
    await source
      .table("patients")
      .insert(fixtures.patient(branch.id, { last_name: "Zacarías Quiñónez", notes: "glaucoma" }));
    const files = await readdir(db.dir);
    expect(files.sort()).toEqual([
      "clinic.cvdb",
      "clinic.cvdb-journal",
      "clinic.cvdb.lock",
      "clinic.cvdb.prev",
    ]);
    for (const file of files) {
      const bytes = await readFile(join(db.dir, file));
      for (const secret of ["Zacarías Quiñónez", "Quiñónez", "CURPSECRETO123", "glaucoma", "CREATE TABLE"]) {
        expect(bytes.includes(Buffer.from(secret, "utf8")), `${file} contains ${secret}`).toBe(false);
      }
      if (file !== "clinic.cvdb.lock") expect((await stat(join(db.dir, file))).mode & 0o077, file).toBe(0);
    }
  });

  it("refuses a second writer on the same file", async () => {
    const error = await failure(createSqliteSource({ path: db.path, key: db.key }));
    expect(error.code).toBe("unavailable");
    expect(error.message).toMatch(/already open/);
  });
});
