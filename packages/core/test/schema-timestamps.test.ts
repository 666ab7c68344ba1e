import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canonicalTimestamp } from "../src/tables/index.js";
import { createTestDatabase, type TestDatabase } from "./support/test-database.js";

/* canonicalTimestamp(): one text form per instant, the same as PostgreSQL's timestamptz(3). */

describe("canonicalTimestamp", () => {
  it.each([
    ["2025-03-01T10:00:00-06:00", "2025-03-01T16:00:00.000Z"],
    ["2025-03-01T10:00:00.5+05:30", "2025-03-01T04:30:00.500Z"],
    ["2025-03-01 10:00:00.123-06", "2025-03-01T16:00:00.123Z"],
    ["2025-03-01 10:00:00+0530", "2025-03-01T04:30:00.000Z"],
    ["1900-01-01 00:00:00-06:36:36", "1900-01-01T06:36:36.000Z"],
    ["2024-02-29T23:59:59.9996Z", "2024-03-01T00:00:00.000Z"],
    ["2025-01-01T00:00:00.1234Z", "2025-01-01T00:00:00.123Z"],
  ])("%s → %s", (input, expected) => {
    expect(canonicalTimestamp(input)).toBe(expected);
  });

  it("accepts a Date", () => {
    expect(canonicalTimestamp(new Date(Date.UTC(2025, 2, 1, 16)))).toBe("2025-03-01T16:00:00.000Z");
  });

  it.each([
    "2025-02-29T00:00:00Z",
    "2025-01-01T24:00:00Z",
    "2025-01-01T00:00:00",
    "2025-01-01",
    "mañana",
    "9999-12-31T23:59:59-01:00",
  ])("refuses %s", (input) => {
    expect(() => canonicalTimestamp(input)).toThrow(/^\[core\] not a timestamp/);
  });

  it("refuses an invalid Date", () => {
    expect(() => canonicalTimestamp(new Date(Number.NaN))).toThrow(RangeError);
  });
});

describe("canonicalTimestamp agrees with PostgreSQL", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase("cv_timestamps", { migrate: false });
  });
  afterAll(async () => {
    await db?.drop();
  });

  it.each([
    "2025-03-01T10:00:00-06:00",
    "2025-03-01T10:00:00.1234+05:30",
    "2025-03-01T10:00:00.1235Z",
    "2025-06-30T23:59:59.9995-03:00",
  ])("on %s, including rounding to milliseconds", async (input) => {
    // timestamptz(3) rounds; to_jsonb prints the stored instant with its offset.
    const [row] = await db.sql<{ value: string }[]>`
      select to_jsonb(${input}::text::timestamptz(3)) #>> '{}' as value`;
    expect(canonicalTimestamp(row?.value ?? "")).toBe(canonicalTimestamp(input));
  });
});
