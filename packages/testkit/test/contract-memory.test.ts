import { createMemorySource } from "@centrovision/core";
import { type ContractHarness, describeSourceContract } from "@centrovision/testkit/contract";

describeSourceContract({
  name: "memory",
  capabilities: { transactions: true, changeFeed: false, durable: false, rowLevelSecurity: false },
  async create() {
    let source = createMemorySource();
    const harness: ContractHarness = {
      source,
      probe: {
        row: async (table, id) => source.store.row(table, id),
        count: async (table) => source.store.count(table),
      },
      // Memory is not durable: the new source starts empty.
      async reopen() {
        await source.close();
        source = createMemorySource();
        harness.source = source;
      },
      cleanup: () => source.close(),
    };
    return harness;
  },
  skip: { "probe.deadline": "answers from memory in the same process; nothing can stop answering" },
});
