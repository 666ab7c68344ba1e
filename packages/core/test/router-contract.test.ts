import { describeSourceContract } from "@centrovision/testkit/contract";
import { createFailoverRouter } from "../src/index.js";
import { createFaultySource } from "./support/faulty-source.js";

// The router is itself a source: over healthy tiers it must behave exactly like one.
describeSourceContract({
  name: "failover router over memory tiers",
  capabilities: { transactions: true, changeFeed: false, durable: false, rowLevelSecurity: false },
  async create() {
    const tiers = [createFaultySource("cloud"), createFaultySource("clinic"), createFaultySource("device")];
    const [cloud] = tiers as [ReturnType<typeof createFaultySource>];
    const source = createFailoverRouter({ sources: tiers, config: { callTimeoutMs: 30_000 } });
    return {
      source,
      // Every tier answers, so every write must have landed on the cloud.
      probe: {
        row: async (table, id) => cloud.inner.store.row(table, id),
        count: async (table) => cloud.inner.store.count(table),
      },
      cut: async () => {
        for (const tier of tiers) tier.fault = "blackhole";
      },
      cleanup: () => source.close(),
    };
  },
});
