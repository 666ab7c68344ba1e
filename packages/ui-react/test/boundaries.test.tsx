import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const srcDir = join(import.meta.dirname, "../src/");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}

describe("package boundaries", () => {
  it("imports only types from other CentroVision packages, so the browser bundle carries no core runtime", () => {
    const valueImports = sources(srcDir).flatMap((file) =>
      [
        ...readFileSync(file, "utf8").matchAll(
          /^(import|export)\s+(?!type\b)[^;]*?from\s+"@centrovision\/[^"]+"/gms,
        ),
      ].map((match) => `${file.slice(srcDir.length)}: ${match[0].split("\n")[0]}`),
    );
    expect(valueImports).toEqual([]);
  });
});
