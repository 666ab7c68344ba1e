import { type Capabilities, type DataSource, type Row, type TableName, tables } from "@centrovision/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { registerErrorCases } from "./cases-errors.js";
import { registerQueryCases } from "./cases-query.js";
import { registerWriteCases } from "./cases-writes.js";
import { createFixtures, type Fixtures } from "./fixtures.js";

/** Reads the database directly, bypassing the source, so a bug symmetric in read and write cannot pass. */
export interface ContractProbe {
  /** The stored row as JSON-like values (e.g. PostgreSQL's `to_jsonb`), or null. */
  row(table: TableName, id: string): Promise<unknown>;
  count(table: TableName): Promise<number>;
}

export interface ContractHarness {
  /** A source over an empty database ({@link reopen} replaces it). */
  source: DataSource;
  probe: ContractProbe;
  /** Makes the source's backend stop answering (e.g. a blackholed link), for deadline cases. */
  cut?: () => Promise<void>;
  /**
   * Closes `source` and puts a new one in its place over the same store, as a restart of the app
   * would. Required when the source declares `durable`; a source that does not may offer it too.
   */
  reopen?: () => Promise<void>;
  /**
   * A source over the same database as a signed-in person who works at no branch. Required when
   * the source declares `rowLevelSecurity`. The harness closes it in `cleanup`.
   */
  stranger?: () => Promise<DataSource>;
  /** Releases everything `create` made. */
  cleanup(): Promise<void>;
}

export const CONTRACT_CASES = [
  "capabilities",
  "capabilities.durable",
  "capabilities.row-level-security",
  "probe.up",
  "probe.deadline",
  "get.missing",
  "insert.roundtrip",
  "insert.defaults",
  "insert.writers",
  "insert.duplicate-id",
  "insert.unique",
  "insert.foreign-key",
  "insert.invalid",
  "upsert.idempotent",
  "upsert.merge",
  "upsert-many.atomic",
  "update.versions",
  "update.missing",
  "update.expected-version",
  "update.invalid",
  "delete.existing",
  "delete.restrict",
  "delete.cascade",
  "list.filters",
  "list.timestamps",
  "list.order",
  "list.enums",
  "list.paging",
  "list.invalid",
  "list.large",
  "concurrent.writers",
  "close",
] as const;
export type ContractCaseId = (typeof CONTRACT_CASES)[number];

export interface SourceContractOptions {
  name: string;
  /** What the source must declare. */
  capabilities: Capabilities;
  /** Called before every test: tests are independent. */
  create(): Promise<ContractHarness>;
  /** Cases this source opts out of, each with the reason. */
  skip?: { readonly [K in ContractCaseId]?: string };
}

/** What every case file gets: the current harness, row builders, and `test` that honours opt-outs. */
export interface ContractContext {
  harness(): ContractHarness;
  fixtures: Fixtures;
  test(id: ContractCaseId, title: string, body: () => Promise<void>, timeoutMs?: number): void;
  /** Writes one linked row per table and returns them as stored. */
  seedClinic(): Promise<{ [K in TableName]: Row<K> }>;
  /** The probe's view of a row, canonicalised with the table's schema. */
  stored<T extends TableName>(table: T, id: string): Promise<Row<T> | null>;
  options: SourceContractOptions;
}

/** Registers the whole adapter contract for one source. */
export function describeSourceContract(options: SourceContractOptions): void {
  describe(`source contract: ${options.name}`, () => {
    let current: ContractHarness | undefined;
    beforeEach(async () => {
      current = await options.create();
    });
    afterEach(async () => {
      await current?.cleanup();
      current = undefined;
    });

    const harness = () => {
      if (!current) throw new Error("[testkit] contract harness used outside a test");
      return current;
    };
    const fixtures = createFixtures();
    const ctx: ContractContext = {
      harness,
      fixtures,
      options,
      test(id, title, body, timeoutMs) {
        const reason = options.skip?.[id];
        if (reason) it.skip(`${id}: ${title} (opted out: ${reason})`, body);
        else it(`${id}: ${title}`, body, timeoutMs);
      },
      async seedClinic() {
        const rows = fixtures.clinic();
        const out: Record<string, unknown> = {};
        for (const [table, row] of Object.entries(rows)) {
          out[table] = await harness()
            .source.table(table as TableName)
            .insert(row as never);
        }
        return out as { [K in TableName]: Row<K> };
      },
      async stored(table, id) {
        const raw = await harness().probe.row(table, id);
        return raw === null || raw === undefined ? null : (tables[table].rowSchema.parse(raw) as never);
      },
    };

    ctx.test("capabilities", "declares the expected capabilities", async () => {
      expect(harness().source.capabilities).toEqual(options.capabilities);
    });
    ctx.test(
      "capabilities.durable",
      "a durable source still has an acknowledged write after a restart; one that is not, has not",
      async () => {
        const { durable } = harness().source.capabilities;
        const reopen = harness().reopen;
        if (reopen === undefined) {
          expect(durable, "a durable source's harness must offer reopen()").toBe(false);
          return;
        }
        const row = await harness().source.table("branches").insert(fixtures.branch());
        await reopen();
        expect(await harness().source.table("branches").get(row.id)).toEqual(durable ? row : null);
      },
    );
    ctx.test(
      "capabilities.row-level-security",
      "under row-level security a person of no branch neither sees nor writes a branch's rows",
      async () => {
        const { rowLevelSecurity } = harness().source.capabilities;
        const stranger = harness().stranger;
        if (stranger === undefined) {
          expect(
            rowLevelSecurity,
            "the harness of a source with row-level security must offer stranger()",
          ).toBe(false);
          return;
        }
        const { branches, patients } = await ctx.seedClinic();
        const theirs = await stranger();
        expect(await theirs.table("patients").get(patients.id)).toBe(rowLevelSecurity ? null : patients);
        if (!rowLevelSecurity) return;
        expect(await theirs.table("patients").list({ where: { branch_id: branches.id } })).toEqual([]);
        await expect(
          theirs.table("patients").update(patients.id, { phone: "55 0000 0000" }),
        ).rejects.toMatchObject({
          code: "not_found",
        });
        await expect(theirs.table("patients").insert(fixtures.patient(branches.id))).rejects.toMatchObject({
          code: "unauthorized",
        });
        expect(await harness().probe.count("patients")).toBe(1);
      },
    );
    registerWriteCases(ctx);
    registerQueryCases(ctx);
    registerErrorCases(ctx);
  });
}
