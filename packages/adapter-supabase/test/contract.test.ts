import { randomUUID } from "node:crypto";
import type { DataSource } from "@centrovision/core";
import { createLink } from "@centrovision/testkit";
import { type ContractHarness, describeSourceContract } from "@centrovision/testkit/contract";
import { afterAll, beforeAll } from "vitest";
import { createSupabaseSource } from "../src/index.js";
import { type LocalCloud, startLocalCloud } from "./support/local-cloud.js";

let cloud: LocalCloud;

beforeAll(async () => {
  cloud = await startLocalCloud();
});

afterAll(async () => {
  await cloud?.stop();
});

describeSourceContract({
  name: "supabase",
  capabilities: { transactions: true, changeFeed: false, durable: true, rowLevelSecurity: true },
  async create() {
    await cloud.truncate();
    // Every test goes through a link, as a PC reaches the cloud over the internet; a fresh link
    // is a fresh origin, so no kept-alive socket from an earlier test is reused.
    const link = await createLink({ target: new URL(cloud.stack.url).host });
    const open = () =>
      createSupabaseSource({ url: link.url(cloud.stack.url), key: cloud.stack.serviceRoleKey, id: "cloud" });
    let source = open();
    const strangers: DataSource[] = [];
    const harness: ContractHarness = {
      source,
      probe: cloud.probe,
      cut: () => link.blackhole(),
      async reopen() {
        await source.close();
        source = open();
        harness.source = source;
      },
      // A signed-in person the cloud knows of no branch: their token, the anon key.
      async stranger() {
        const stranger = createSupabaseSource({
          url: link.url(cloud.stack.url),
          key: cloud.stack.anonKey,
          accessToken: await cloud.stack.mintUserToken(randomUUID()),
          id: "cloud-as-stranger",
        });
        strangers.push(stranger);
        return stranger;
      },
      async cleanup() {
        await link.close();
        await Promise.all([source, ...strangers].map((s) => s.close()));
      },
    };
    return harness;
  },
});
