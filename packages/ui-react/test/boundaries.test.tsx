import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";

const srcDir = join(import.meta.dirname, "../src/");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}

describe("package boundaries", () => {
  it("imports from core's light entry only (no zod, no RxJS in the browser bundle), and from no other package", () => {
    const imports = sources(srcDir).flatMap((file) =>
      [
        ...readFileSync(file, "utf8").matchAll(
          /^(?:import|export)\s[^;]*?from\s+"(@centrovision\/[^"]+)"/gms,
        ),
      ].map((match) => match[1]),
    );
    expect(imports.length).toBeGreaterThan(0);
    expect(new Set(imports)).toEqual(new Set(["@centrovision/core/shared"]));
  });

  it("core's light entry loads neither zod nor RxJS, through any of its files", () => {
    const seen = new Set<string>();
    const packages: string[] = [];
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const [, specifier] of readFileSync(file, "utf8").matchAll(/from\s+"([^"]+)"/g)) {
        if (specifier?.startsWith(".")) visit(join(dirname(file), specifier.replace(/\.js$/, ".ts")));
        else packages.push(`${file}: ${specifier}`);
      }
    };
    visit(join(import.meta.dirname, "../../core/src/shared/index.ts"));
    expect(seen.size).toBeGreaterThan(3);
    expect(packages).toEqual([]);
  });
});
