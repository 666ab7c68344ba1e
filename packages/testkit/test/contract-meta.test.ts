import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const packagesDir = fileURLToPath(new URL("../../", import.meta.url));
const adapters = readdirSync(packagesDir).filter((name) => name.startsWith("adapter-"));

describe("every adapter runs the source contract", () => {
  it("finds the adapter packages", () => {
    expect(adapters).toEqual(["adapter-postgres", "adapter-sqlite", "adapter-supabase"]);
  });

  for (const adapter of adapters) {
    const dir = join(packagesDir, adapter);
    // A package still at its placeholder (README + package.json, no code) has nothing to test yet.
    const built = existsSync(join(dir, "src"));
    it.runIf(built)(`${adapter} calls describeSourceContract in test/contract.test.ts`, () => {
      const file = join(dir, "test", "contract.test.ts");
      expect(existsSync(file), `${adapter} has no test/contract.test.ts`).toBe(true);
      expect(readFileSync(file, "utf8")).toMatch(/describeSourceContract\(/);
    });
  }
});
