import { loadModule, parsePlPgSQLSync, parseSync, scanSync } from "libpg-query";
import type postgres from "postgres";

/**
 * An UPDATE or DELETE without a WHERE clause inside an installed function. Hosted Supabase loads
 * `pg-safeupdate` for API sessions, which refuses such a statement at run time with SQLSTATE 21000;
 * the local stand-in has no such extension, so {@link checkSafeUpdate} finds them statically.
 */
export interface SafeUpdateViolation {
  /** schema-qualified function signature, e.g. "public.cv_sync_init(text, boolean)" */
  readonly fn: string;
  /** "UPDATE" | "DELETE" */
  readonly statement: "UPDATE" | "DELETE";
  /** The offending statement text, at most 200 characters, whitespace collapsed. */
  readonly sql: string;
  /** True when the statement came from a dynamic-SQL format() template or string literal. */
  readonly dynamic: boolean;
}

/**
 * The outcome of one {@link checkSafeUpdate} run. `violations` are ordered by schema, function name and
 * signature, then by position in the function. `unchecked` lists the functions whose dynamic SQL could not be
 * checked (a template that is not a literal, e.g. built by concatenation), one entry per statement;
 * dynamic SQL whose text mentions neither UPDATE nor DELETE is not listed.
 */
export interface SafeUpdateReport {
  violations: SafeUpdateViolation[];
  unchecked: { fn: string; reason: string }[];
}

type Node = Record<string, unknown>;

interface FunctionRow {
  fn: string;
  lang: "plpgsql" | "sql";
  def: string;
  prosrc: string;
}

interface Unsafe {
  statement: SafeUpdateViolation["statement"];
  /** Byte offset of the target table, which every UPDATE/DELETE has: the parse tree keeps no statement start. */
  location: number;
}

/** The statements PL/pgSQL sends to EXECUTE, and the field holding the SQL-string expression. */
const DYNAMIC: Record<string, string> = {
  PLpgSQL_stmt_dynexecute: "query",
  PLpgSQL_stmt_dynfors: "query",
  PLpgSQL_stmt_return_query: "dynquery",
  PLpgSQL_stmt_open: "dynquery",
};
const WRITES: Record<string, Unsafe["statement"] | undefined> = {
  UpdateStmt: "UPDATE",
  DeleteStmt: "DELETE",
};
/** PLpgSQL_expr.parseMode values (RawParseMode): a whole statement, and the first assignment mode. */
const PARSE_STATEMENT = 0;
const PARSE_ASSIGN = 3;

const isNode = (value: unknown): value is Node => typeof value === "object" && value !== null;
const at = (value: unknown, ...path: (string | number)[]): unknown =>
  path.reduce<unknown>((node, key) => (isNode(node) ? node[key] : undefined), value);
const clip = (text: string) => text.replace(/\s+/g, " ").trim().slice(0, 200);
const mentionsWrite = (text: string) => /update|delete/i.test(text);
const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

let loading: Promise<void> | undefined;
/** Instantiating the WASM parser costs tens of milliseconds; one instance serves every check in the process. */
const ready = () => {
  loading ??= loadModule();
  return loading;
};

/** Calls `visit` with every key and value of a JSON tree, depth first, in document order. */
function walk(node: unknown, visit: (key: string, value: unknown) => void): void {
  if (Array.isArray(node)) for (const child of node) walk(child, visit);
  else if (isNode(node)) {
    for (const [key, value] of Object.entries(node)) {
      visit(key, value);
      walk(value, visit);
    }
  }
}

/** Every UPDATE/DELETE without WHERE in a parse tree, at any depth: CTEs, subqueries, BEGIN ATOMIC bodies. */
function unsafeIn(tree: unknown): Unsafe[] {
  const out: Unsafe[] = [];
  walk(tree, (key, value) => {
    const statement = WRITES[key];
    // `WHERE true` and `WHERE CURRENT OF c` both leave a whereClause, as pg-safeupdate accepts them.
    if (statement && isNode(value) && value.whereClause === undefined) {
      out.push({ statement, location: Number(at(value, "relation", "location") ?? 0) });
    }
  });
  return out;
}

/**
 * The `;`-separated statement of `text` around a byte offset. `BEGIN ATOMIC` also starts a statement,
 * so a SQL function's body statement is shown without the CREATE FUNCTION header. Offsets from
 * libpg-query count UTF-8 bytes, so slicing the JS string directly would cut Spanish text short.
 */
function statementAt(text: string, location: number): string {
  const bytes = Buffer.from(text);
  let start = 0;
  let end = bytes.length;
  let previous = "";
  for (const token of scanSync(text).tokens) {
    const word = token.text.toUpperCase();
    const boundary = word === ";" || (word === "ATOMIC" && previous === "BEGIN");
    previous = word;
    if (!boundary) continue;
    if (token.end <= location) start = token.end;
    else {
      end = token.start;
      break;
    }
  }
  return clip(bytes.subarray(start, end).toString());
}

/** An assignment's query is `target := expr` (or `=`); only the part after the operator is SQL. */
function assignedExpression(query: string): string {
  let depth = 0;
  for (const token of scanSync(query).tokens) {
    if (token.text === "[" || token.text === "(") depth++;
    else if (token.text === "]" || token.text === ")") depth--;
    else if (depth === 0 && (token.text === ":=" || token.text === "=")) {
      return Buffer.from(query).subarray(token.end).toString();
    }
  }
  return query;
}

/** Stand-ins that parse where format() output usually goes: an identifier for %I/%s, a literal for %L. */
function fillTemplate(template: string): string {
  let n = 0;
  return template.replace(/%%|%(?:\d+\$)?-?(?:\*(?:\d+\$)?|\d+)?([sIL])/g, (match, type: string) => {
    if (match === "%%") return "%";
    return type === "L" ? "'x'" : `cv_x${++n}`;
  });
}

const stringConstant = (node: unknown): string | undefined => {
  const sval = at(node, "A_Const", "sval");
  // Protobuf JSON drops empty strings, so '' arrives as `sval: {}`.
  return isNode(sval) ? String(sval.sval ?? "") : undefined;
};

/** The SQL an EXECUTE expression runs, when it is a string literal or a format() with a literal template. */
function dynamicTemplate(expression: string): { template: string; sql: string } | undefined {
  let tree: unknown;
  try {
    tree = parseSync(`SELECT ${expression}`);
  } catch {
    return undefined;
  }
  const val = at(tree, "stmts", 0, "stmt", "SelectStmt", "targetList", 0, "ResTarget", "val");
  const literal = stringConstant(val);
  if (literal !== undefined) return { template: literal, sql: literal };
  const names = at(val, "FuncCall", "funcname");
  const last = Array.isArray(names) ? at(names[names.length - 1], "String", "sval") : undefined;
  const template = last === "format" ? stringConstant(at(val, "FuncCall", "args", 0)) : undefined;
  return template === undefined ? undefined : { template, sql: fillTemplate(template) };
}

/** User-defined types by `name` and `schema.name`; true for composite (row) types. */
type UserTypes = Map<string, boolean>;

const unquote = (name: string) =>
  name.startsWith('"') ? name.slice(1, -1).replaceAll('""', '"') : name.toLowerCase();

/**
 * libpg-query compiles PL/pgSQL without a catalog: every type outside pg_catalog becomes `record`, so
 * an enum, domain or array variable trips record-only checks the server passed ("PL/pgSQL functions
 * cannot return type record[]", "record variable cannot be part of multiple-item INTO list").
 * This spells such types `text` (and `x%ROWTYPE` `record`), inside dollar-quoted bodies too, for a
 * second attempt. A column sharing an enum's bare name is renamed as well, which changes only the
 * statement text shown.
 */
function neutralTypes(text: string, types: UserTypes): string {
  const tokens = scanSync(text).tokens;
  const bytes = Buffer.from(text);
  let out = "";
  let copied = 0;
  const replace = (from: number, to: number, replacement: string) => {
    out += bytes.subarray(copied, tokens[from]?.start).toString() + replacement;
    copied = tokens[to]?.end ?? copied;
  };
  const word = (k: number) => tokens[k]?.text ?? "";
  for (let i = 0; i < tokens.length; i++) {
    const tag = tokens[i]?.tokenName === "SCONST" ? /^\$[^$]*\$/.exec(word(i))?.[0] : undefined;
    if (tag) {
      replace(i, i, tag + neutralTypes(word(i).slice(tag.length, -tag.length), types) + tag);
      continue;
    }
    const span = word(i + 1) === "." ? 3 : 1;
    const name = span === 3 ? `${unquote(word(i))}.${unquote(word(i + 2))}` : unquote(word(i));
    const next = word(i + span);
    if (next === "%" && word(i + span + 1).toLowerCase() === "rowtype") {
      replace(i, i + span + 1, "record");
      i += span + 1;
    } else if (types.has(name) && (next === "[" || types.get(name) === false)) {
      replace(i, i + span - 1, "text");
      i += span - 1;
    }
  }
  return out + bytes.subarray(copied).toString();
}

type PlExpression = { query: string; parseMode: number; dynamic: boolean };

/** Every SQL expression of a PL/pgSQL tree; EXECUTE's string expression is listed again as dynamic. */
function plExpressions(tree: unknown): PlExpression[] {
  const out: PlExpression[] = [];
  walk(tree, (key, value) => {
    const query = at(value, "query");
    if (key === "PLpgSQL_expr" && typeof query === "string") {
      out.push({ query, parseMode: Number(at(value, "parseMode") ?? PARSE_STATEMENT), dynamic: false });
    }
    const field = DYNAMIC[key];
    const dynamic = field === undefined ? undefined : at(value, field, "PLpgSQL_expr", "query");
    if (typeof dynamic === "string") out.push({ query: dynamic, parseMode: PARSE_STATEMENT, dynamic: true });
  });
  return out;
}

/** Parses a PL/pgSQL CREATE FUNCTION, retrying with {@link neutralTypes}; throws the first attempt's error. */
function parsePlpgsql(def: string, types: UserTypes): unknown {
  try {
    return parsePlPgSQLSync(def);
  } catch (error) {
    try {
      return parsePlPgSQLSync(neutralTypes(def, types));
    } catch {
      throw error;
    }
  }
}

/** Adds one function's violations, and what of it could not be checked, to `report`. */
function checkFunction(row: FunctionRow, types: UserTypes, report: SafeUpdateReport): void {
  const unchecked = (reason: string) => report.unchecked.push({ fn: row.fn, reason });
  /** Records the unsafe statements of SQL text; `template` (shown instead) marks it as dynamic SQL. */
  const statements = (text: string, what: string, template?: string) => {
    let tree: unknown;
    try {
      tree = parseSync(text);
    } catch (error) {
      unchecked(`${what} does not parse (${message(error)}): ${clip(text)}`);
      return;
    }
    for (const { statement, location } of unsafeIn(tree)) {
      const sql = template === undefined ? statementAt(text, location) : clip(template);
      report.violations.push({ fn: row.fn, statement, sql, dynamic: template !== undefined });
    }
  };
  if (row.lang === "sql") {
    // A BEGIN ATOMIC body is part of the CREATE FUNCTION parse tree (sql_body); a string body is prosrc.
    statements(row.def, "function definition");
    if (row.prosrc.trim() !== "") statements(row.prosrc, "function body");
    return;
  }
  let tree: unknown;
  try {
    tree = parsePlpgsql(row.def, types);
  } catch (error) {
    unchecked(`PL/pgSQL body does not parse (${message(error)})`);
    return;
  }
  for (const { query, parseMode, dynamic } of plExpressions(tree)) {
    if (!dynamic) {
      const expression = parseMode >= PARSE_ASSIGN ? assignedExpression(query) : query;
      statements(parseMode === PARSE_STATEMENT ? query : `SELECT ${expression}`, "statement");
    } else if (mentionsWrite(query)) {
      // Only dynamic SQL that says UPDATE or DELETE is worth a look: listing every concatenated SELECT,
      // or every template whose `%s` stands for a whole clause, would bury the few that matter.
      const found = dynamicTemplate(query);
      if (found) statements(found.sql, "EXECUTE template", found.template);
      else unchecked(`EXECUTE of neither a literal nor a format() template: ${clip(query)}`);
    }
  }
}

async function userTypes(sql: postgres.Sql): Promise<UserTypes> {
  const types: UserTypes = new Map();
  for (const { schema, name, composite } of await sql<{ schema: string; name: string; composite: boolean }[]>`
    select n.nspname as schema, t.typname as name, t.typtype = 'c' as composite
    from pg_type t join pg_namespace n on n.oid = t.typnamespace
    where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\_toast%'`) {
    types.set(`${schema}.${name}`, composite);
    // A bare name of both a row type and a scalar type stays: renaming a row variable breaks `v.f := x`.
    types.set(name, composite || types.get(name) === true);
  }
  return types;
}

/**
 * Finds every UPDATE/DELETE without WHERE that `pg-safeupdate` would refuse, in every PL/pgSQL and SQL
 * function of the database `sql` points at, by parsing each with PostgreSQL 18's own parser. Stricter
 * than the runtime check: branches never taken are checked too. Functions of extensions and of the
 * system schemas are skipped. Never throws for a function it cannot parse; that goes to `unchecked`.
 */
export async function checkSafeUpdate(sql: postgres.Sql): Promise<SafeUpdateReport> {
  await ready();
  const rows = await sql<FunctionRow[]>`
    select format('%I.%I(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes)) as fn,
           l.lanname as lang, pg_get_functiondef(p.oid) as def, p.prosrc
    from pg_proc p
    join pg_namespace n on n.oid = p.pronamespace
    join pg_language l on l.oid = p.prolang
    where p.prokind in ('f', 'p')
      and l.lanname in ('plpgsql', 'sql')
      and n.nspname not in ('pg_catalog', 'information_schema')
      and n.nspname not like 'pg\_toast%'
      and not exists (
        select from pg_depend d
        where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
    order by n.nspname, p.proname, fn`;
  const types = await userTypes(sql);
  const report: SafeUpdateReport = { violations: [], unchecked: [] };
  for (const row of rows) checkFunction(row, types, report);
  return report;
}
