import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

// Each package's entry points export what their users import, and nothing else: a name is in use
// when a file outside the package imports it from that entry, when the package's README shows it
// in code (the public API offered to developers outside this repository), or when it appears in
// the declaration of a name in use (the options type of a function someone calls, the type of a
// field of a status someone reads). Anything else is dead or test-only API: the package's own
// tests import it from the module that defines it.

const root = fileURLToPath(new URL("../../../", import.meta.url));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    if (entry === "node_modules" || entry === "dist" || entry.startsWith(".")) return [];
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return files(path);
    return /\.(ts|tsx|mts)$/.test(entry) && !entry.endsWith(".d.ts") ? [path] : [];
  });
}

interface Entry {
  readonly specifier: string;
  readonly packageDir: string;
  readonly file: string;
  /** The README's code: its fenced blocks and `inline` spans. */
  readonly documented: string;
}

const entries: Entry[] = readdirSync(join(root, "packages")).flatMap((name) => {
  const packageDir = join(root, "packages", name);
  const manifest = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8")) as {
    name: string;
    exports?: Record<string, Record<string, string>>;
  };
  return Object.entries(manifest.exports ?? {}).flatMap(([path, conditions]) => {
    const source = conditions["@centrovision/source"];
    if (source === undefined) return [];
    const specifier = path === "." ? manifest.name : `${manifest.name}/${path.slice(2)}`;
    const readme = readFileSync(join(packageDir, "README.md"), "utf8");
    const documented = [...readme.matchAll(/```[^\n]*\n([\s\S]*?)```|`([^`\n]+)`/g)]
      .map((match) => match[1] ?? match[2])
      .join("\n");
    return [{ specifier, packageDir: `${packageDir}/`, file: join(packageDir, source), documented }];
  });
});

/** Per file of the workspace: the names it imports (or re-exports) from each module specifier. */
function importsOf(file: string): Map<string, Set<string>> {
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest);
  const found = new Map<string, Set<string>>();
  for (const statement of source.statements) {
    if (!ts.isImportDeclaration(statement) && !ts.isExportDeclaration(statement)) continue;
    const specifier = statement.moduleSpecifier;
    if (specifier === undefined || !ts.isStringLiteral(specifier)) continue;
    const names = found.get(specifier.text) ?? new Set<string>();
    found.set(specifier.text, names);
    const bindings = ts.isImportDeclaration(statement)
      ? statement.importClause?.namedBindings
      : statement.exportClause;
    if (bindings !== undefined && (ts.isNamedImports(bindings) || ts.isNamedExports(bindings))) {
      for (const element of bindings.elements) names.add((element.propertyName ?? element.name).text);
    } else if (bindings !== undefined || ts.isExportDeclaration(statement)) {
      // `import * as x`, `export * from`, `export * as x from`: every name may be used.
      names.add("*");
    }
  }
  return found;
}

const workspaceFiles = [...files(join(root, "packages")), ...files(join(root, "apps"))];
const imports = new Map(workspaceFiles.map((file) => [file, importsOf(file)]));

const program = ts.createProgram(
  entries.map((entry) => entry.file),
  {
    ...ts.convertCompilerOptionsFromJson(
      JSON.parse(readFileSync(join(root, "tsconfig.base.json"), "utf8")).compilerOptions,
      root,
    ).options,
    noEmit: true,
  },
);
const checker = program.getTypeChecker();
const resolve = (symbol: ts.Symbol) =>
  symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;

/** Names of `entry` no user imports and no declaration in use mentions. */
function unusedExports(entry: Entry): string[] {
  const module = checker.getSymbolAtLocation(program.getSourceFile(entry.file) as ts.SourceFile);
  if (module === undefined) throw new Error(`[testkit] ${entry.file} is not a module`);
  const exported = new Map(
    checker.getExportsOfModule(module).map((symbol) => [resolve(symbol), symbol.name]),
  );
  const used = new Set<string>();
  for (const [file, byModule] of imports) {
    if (file.startsWith(entry.packageDir)) continue;
    for (const name of byModule.get(entry.specifier) ?? []) used.add(name);
  }
  if (used.has("*")) return [];
  for (const name of exported.values()) {
    if (new RegExp(`\\b${name}\\b`).test(entry.documented)) used.add(name);
  }
  // Follow the declarations of what is used to the exported names they mention, until none is new.
  const queue = [...exported].filter(([, name]) => used.has(name)).map(([symbol]) => symbol);
  for (let symbol = queue.pop(); symbol !== undefined; symbol = queue.pop()) {
    const visit = (node: ts.Node) => {
      if (ts.isIdentifier(node)) {
        const found = checker.getSymbolAtLocation(node);
        const name = found && exported.get(resolve(found));
        if (name !== undefined && !used.has(name)) {
          used.add(name);
          queue.push(resolve(found as ts.Symbol));
        }
      }
      ts.forEachChild(node, visit);
    };
    for (const declaration of symbol.declarations ?? []) visit(declaration);
  }
  return [...exported.values()].filter((name) => !used.has(name)).sort();
}

describe("each package exports what its users import", () => {
  it("finds the entry points", () => {
    expect(entries.length).toBeGreaterThanOrEqual(10);
  });

  for (const entry of entries) {
    it(`${entry.specifier}: no export that nothing outside the package uses`, () => {
      expect(unusedExports(entry)).toEqual([]);
    });
  }
});
