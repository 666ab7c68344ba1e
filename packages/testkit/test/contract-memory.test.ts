import { createMemorySource } from "@centrovision/core";
import { describeSourceContract } from "@centrovision/testkit/contract";

describeSourceContract({
  name: "memory",
  capabilities: { transactions: true, changeFeed: false, durable: false, rowLevelSecurity: false },
  async create() {
    const source = createMemorySource();
    return {
      source,
      probe: {
        row: async (table, id) => source.store.row(table, id),
        count: async (table) => source.store.count(table),
      },
      cleanup: () => source.close(),
    };
  },
  skip: { "probe.deadline": "answers from memory in the same process; nothing can stop answering" },
});
