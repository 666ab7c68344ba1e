import { createLink } from "@centrovision/testkit";
import { type ContractHarness, describeSourceContract } from "@centrovision/testkit/contract";
import { afterAll, beforeAll } from "vitest";
import { createPostgresSource } from "../src/index.js";
import { createTestDatabase, type TestDatabase } from "./support/test-database.js";

// Twice: on a C-collation server (the test cluster's default) and on one whose default collation
// is Spanish (Mexico), where "Álvarez" sorts before "Ortiz" unless the adapter asks for C.
for (const [name, collation] of [
  ["postgres", "c"],
  ["postgres (es-MX default collation)", "esMx"],
] as const) {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase(`contract_${collation.toLowerCase()}`, collation);
  });

  afterAll(async () => {
    await database?.drop();
  });

  describeSourceContract({
    name,
    capabilities: { transactions: true, changeFeed: false, durable: true, rowLevelSecurity: false },
    async create() {
      // One database per run of the suite, emptied per test: TRUNCATE measured 20 ms against
      // 100 ms for copying a template per test.
      await database.truncate();
      // Every test goes through a link, as a PC reaches the clinic server over the LAN.
      const link = await createLink({ target: { host: "127.0.0.1", port: database.port } });
      const open = () => createPostgresSource({ url: link.url(database.url), id: "clinic" });
      let source = open();
      const harness: ContractHarness = {
        source,
        probe: database.probe,
        cut: () => link.blackhole(),
        async reopen() {
          await source.close();
          source = open();
          harness.source = source;
        },
        async cleanup() {
          // Heal the link first: connections that lost bytes to cut() are reset, the rest close
          // normally, so close() does not wait out its grace period on a blackhole.
          await link.pass();
          await source.close();
          await link.close();
        },
      };
      return harness;
    },
  });
}
