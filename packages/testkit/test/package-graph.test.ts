import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PRODUCT_VERSION } from "@centrovision/core";
import { describe, expect, it } from "vitest";

// The workspace's dependency graph, from each package.json and each src/ import: apps depend on
// packages, packages on core; nothing depends on an app; the UI package on core only.

const root = fileURLToPath(new URL("../../../", import.meta.url));

interface Workspace {
  readonly name: string;
  readonly dir: string;
  readonly kind: "app" | "package";
  readonly version: string;
  readonly dependencies: readonly string[];
  readonly devDependencies: readonly string[];
}

const workspaces: Workspace[] = (["apps", "packages"] as const).flatMap((group) =>
  readdirSync(join(root, group)).map((name) => {
    const dir = join(root, group, name);
    const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
      name: string;
      version: string;
      dependencies?: Record<string, string>;
      devDependencies?: Record<string, string>;
    };
    return {
      name: manifest.name,
      dir,
      kind: group === "apps" ? "app" : "package",
      version: manifest.version,
      dependencies: Object.keys(manifest.dependencies ?? {}),
      devDependencies: Object.keys(manifest.devDependencies ?? {}),
    };
  }),
);
const names = new Set(workspaces.map((w) => w.name));
const internal = (deps: readonly string[]) => deps.filter((dep) => names.has(dep)).sort();
const byName = new Map(workspaces.map((w) => [w.name, w]));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return sources(path);
    return /\.tsx?$/.test(entry) ? [path] : [];
  });
}

/** Every workspace package a file of `src/` imports: [package, type-only?]. */
function imports(workspace: Workspace): [string, boolean][] {
  return sources(join(workspace.dir, "src")).flatMap((file) =>
    [
      ...readFileSync(file, "utf8").matchAll(
        /^(?:import|export)(\s+type)?\s[^;]*?from\s+"((?:@centrovision\/[^/"]+)|centrovision-sync)[^"]*"/gms,
      ),
    ].map((match): [string, boolean] => [match[2] as string, match[1] !== undefined]),
  );
}

describe("the product's one version", () => {
  it("is every package's version, the root's, and what every CLI and status shows (PRODUCT_VERSION)", () => {
    const rootVersion = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string })
      .version;
    expect(rootVersion).toBe(PRODUCT_VERSION);
    expect(Object.fromEntries(workspaces.map((w) => [w.name, w.version]))).toEqual(
      Object.fromEntries(workspaces.map((w) => [w.name, PRODUCT_VERSION])),
    );
  });
});

describe("the workspace's package graph", () => {
  it("finds every workspace", () => {
    expect(workspaces.length).toBeGreaterThanOrEqual(9);
  });

  it("has no package depending on an app", () => {
    const apps = new Set(workspaces.filter((w) => w.kind === "app").map((w) => w.name));
    const offending = workspaces.flatMap((w) =>
      internal([...w.dependencies, ...w.devDependencies])
        .filter((dep) => apps.has(dep))
        .map((dep) => `${w.name} → ${dep}`),
    );
    expect(offending).toEqual([]);
  });

  it("keeps core at the bottom and the UI package on core alone", () => {
    expect(internal(byName.get("@centrovision/core")?.dependencies ?? ["missing"])).toEqual([]);
    expect(internal(byName.get("@centrovision/ui-react")?.dependencies ?? ["missing"])).toEqual([
      "@centrovision/core",
    ]);
  });

  it("declares what src/ imports: a runtime import as a dependency, a type-only one at least as a devDependency", () => {
    const undeclared = workspaces.flatMap((w) =>
      imports(w)
        .filter(([dep]) => dep !== w.name)
        .filter(
          ([dep, typeOnly]) =>
            !(w.dependencies.includes(dep) || (typeOnly && w.devDependencies.includes(dep))),
        )
        .map(([dep, typeOnly]) => `${w.name} imports ${dep}${typeOnly ? " (types)" : ""}`),
    );
    expect([...new Set(undeclared)]).toEqual([]);
  });

  it("has no cycle among dependencies", () => {
    const cycles: string[] = [];
    const visit = (name: string, path: readonly string[]) => {
      if (path.includes(name)) {
        cycles.push([...path, name].join(" → "));
        return;
      }
      for (const dep of internal(byName.get(name)?.dependencies ?? [])) visit(dep, [...path, name]);
    };
    for (const w of workspaces) visit(w.name, []);
    expect(cycles).toEqual([]);
  });
});
