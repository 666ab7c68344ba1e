import { createLink } from "@centrovision/testkit";
import { describeSourceContract } from "@centrovision/testkit/contract";
import { afterAll, beforeAll } from "vitest";
import { createSupabaseSource, SUPABASE_CAPABILITIES } from "../src/index.js";
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
  capabilities: SUPABASE_CAPABILITIES,
  async create() {
    await cloud.truncate();
    // Every test goes through a link, as a PC reaches the cloud over the internet; a fresh link
    // is a fresh origin, so no kept-alive socket from an earlier test is reused.
    const link = await createLink({ target: new URL(cloud.stack.url).host });
    const source = createSupabaseSource({
      url: link.url(cloud.stack.url),
      key: cloud.stack.serviceRoleKey,
      id: "cloud",
    });
    return {
      source,
      probe: cloud.probe,
      cut: () => link.blackhole(),
      async cleanup() {
        await link.close();
        await source.close();
      },
    };
  },
});
