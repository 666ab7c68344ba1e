import type { Sql } from "postgres";

/**
 * The schema cache: which tables, columns and functions the exposed schema
 * holds. SQL is built only from names found here (then quoted), so nothing a
 * request says is ever pasted into a statement.
 */

export interface Column {
  readonly name: string;
  /** Quoted, schema-qualified type name without typmod (`"pg_catalog"."varchar"`), safe to paste after `::`. */
  readonly type: string;
  /** Bare `pg_type.typname`, e.g. `jsonb`, `_int4`. */
  readonly typeName: string;
  /** The column default as SQL (identity columns: their `nextval`), for `Prefer: missing=default`. */
  readonly defaultExpr: string | null;
}

export interface Table {
  readonly schema: string;
  readonly name: string;
  readonly columns: ReadonlyMap<string, Column>;
  readonly primaryKey: readonly string[];
}

export interface FunctionParam {
  /** Empty for an unnamed parameter. */
  readonly name: string;
  /** `i` in, `o` out, `b` inout, `v` variadic, `t` table column. */
  readonly mode: "i" | "o" | "b" | "v" | "t";
  readonly type: string;
  readonly typeName: string;
  /** Readable type, used in PGRST203's message. */
  readonly displayType: string;
  readonly hasDefault: boolean;
}

export type ReturnShape =
  | { readonly kind: "void" }
  | { readonly kind: "scalar" }
  | { readonly kind: "composite"; readonly columns: ReadonlyMap<string, Column> };

export interface DbFunction {
  readonly schema: string;
  readonly name: string;
  readonly params: readonly FunctionParam[];
  readonly returnsSet: boolean;
  readonly returns: ReturnShape;
  readonly volatile: boolean;
}

export interface Catalog {
  readonly tables: ReadonlyMap<string, Table>;
  /** Overloads by name. */
  readonly functions: ReadonlyMap<string, readonly DbFunction[]>;
  /** Names a `select=col::name` cast may use → quoted, qualified type. */
  readonly castTypes: ReadonlyMap<string, string>;
  /**
   * PostgREST's impersonated role settings: per role the gateway may switch to, the settings of
   * `ALTER ROLE … SET` (this database's over every database's), applied to each request's
   * transaction. Supabase's `statement_timeout` for `anon` (3 s) and `authenticated` (8 s) live here.
   */
  readonly roleSettings: ReadonlyMap<string, readonly (readonly [string, string])[]>;
}

/** SQL spellings of built-in types that `pg_type` knows under another name. */
const TYPE_ALIASES: Readonly<Record<string, string>> = {
  int: "int4",
  integer: "int4",
  smallint: "int2",
  bigint: "int8",
  boolean: "bool",
  real: "float4",
  float: "float8",
  "double precision": "float8",
  decimal: "numeric",
  "character varying": "varchar",
  character: "bpchar",
  "timestamp with time zone": "timestamptz",
  "timestamp without time zone": "timestamp",
  "time with time zone": "timetz",
  "time without time zone": "time",
};

const TYPE_REF = `quote_ident(tn.nspname) || '.' || quote_ident(t.typname)`;

const TABLES_SQL = `
  select c.relname as name,
    coalesce((
      select json_agg(json_build_object(
        'name', a.attname, 'type', ${TYPE_REF}, 'typeName', t.typname,
        'defaultExpr', case when a.attidentity <> ''
          then format('nextval(%L::regclass)', pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname))
          else pg_get_expr(d.adbin, d.adrelid) end) order by a.attnum)
      from pg_attribute a
      join pg_type t on t.oid = a.atttypid
      join pg_namespace tn on tn.oid = t.typnamespace
      left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum and a.attgenerated = ''
      where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    ), '[]')::text as columns,
    coalesce((
      select json_agg(a.attname order by array_position(i.indkey::int2[], a.attnum))
      from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey::int2[])
      where i.indrelid = c.oid and i.indisprimary
    ), '[]')::text as primary_key
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = $1::text and c.relkind in ('r', 'v', 'm', 'f', 'p')`;

const FUNCTIONS_SQL = `
  select p.proname as name, p.proretset as returns_set, p.provolatile = 'v' as volatile,
    rt.typtype = 'p' and rt.typname = 'void' as returns_void,
    p.pronargs::int as nargs, p.pronargdefaults::int as ndefaults,
    coalesce((
      select json_agg(json_build_object(
        'name', coalesce(x.name, ''), 'mode', coalesce(x.mode::text, 'i'), 'type', ${TYPE_REF},
        'typeName', t.typname, 'displayType', format_type(t.oid, null)) order by x.ord)
      from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]), p.proargmodes::text[], p.proargnames)
        with ordinality as x(type, mode, name, ord)
      join pg_type t on t.oid = x.type
      join pg_namespace tn on tn.oid = t.typnamespace
    ), '[]')::text as params,
    (
      select json_agg(json_build_object('name', a.attname, 'type', ${TYPE_REF}, 'typeName', t.typname) order by a.attnum)
      from pg_attribute a
      join pg_type t on t.oid = a.atttypid
      join pg_namespace tn on tn.oid = t.typnamespace
      where rt.typtype = 'c' and a.attrelid = rt.typrelid and a.attnum > 0 and not a.attisdropped
    )::text as composite_columns
  from pg_proc p
  join pg_namespace n on n.oid = p.pronamespace
  join pg_type rt on rt.oid = p.prorettype
  where n.nspname = $1::text and p.prokind = 'f'`;

const TYPES_SQL = `
  select t.typname as name, ${TYPE_REF} as ref
  from pg_type t join pg_namespace tn on tn.oid = t.typnamespace
  where tn.nspname in ('pg_catalog', $1::text) and t.typtype in ('b', 'd', 'e', 'r', 'm') and t.typname !~ '^_'`;

// Only settings a session may set for itself: PostgREST skips the others too.
const ROLE_SETTINGS_SQL = `
  select r.rolname as role, split_part(c.setting, '=', 1) as name,
    substr(c.setting, length(split_part(c.setting, '=', 1)) + 2) as value
  from pg_db_role_setting s
  join pg_roles r on r.oid = s.setrole
  cross join lateral unnest(s.setconfig) with ordinality as c(setting, ord)
  where s.setdatabase in (0, (select oid from pg_database where datname = current_database()))
    and pg_has_role(current_user, r.oid, 'MEMBER') and r.rolname <> current_user
    and exists (select from pg_settings p where p.name = split_part(c.setting, '=', 1) and p.context = 'user')
  order by r.rolname, s.setdatabase, c.ord`;

interface RawColumn {
  name: string;
  type: string;
  typeName: string;
  defaultExpr?: string | null;
}

function columnMap(raw: readonly RawColumn[]): Map<string, Column> {
  return new Map(raw.map((c) => [c.name, { ...c, defaultExpr: c.defaultExpr ?? null }]));
}

interface RawFunction {
  name: string;
  returns_set: boolean;
  volatile: boolean;
  returns_void: boolean;
  nargs: number;
  ndefaults: number;
  params: string;
  composite_columns: string | null;
}

function toFunction(schema: string, raw: RawFunction): DbFunction {
  const all = JSON.parse(raw.params) as Omit<FunctionParam, "hasDefault">[];
  // Defaults belong to the last `ndefaults` input parameters (pg_proc.pronargdefaults).
  let inputIndex = 0;
  const params = all.map((p) => {
    const isInput = p.mode === "i" || p.mode === "b" || p.mode === "v";
    const hasDefault = isInput && inputIndex++ >= raw.nargs - raw.ndefaults;
    return { ...p, hasDefault };
  });
  const outputs = params.filter((p) => p.mode === "o" || p.mode === "b" || p.mode === "t");
  let returns: ReturnShape;
  if (raw.returns_void) returns = { kind: "void" };
  else if (raw.composite_columns !== null) {
    returns = { kind: "composite", columns: columnMap(JSON.parse(raw.composite_columns) as RawColumn[]) };
  } else if (
    outputs.length > 1 ||
    (outputs.length === 1 && raw.returns_set && params.some((p) => p.mode === "t"))
  ) {
    returns = { kind: "composite", columns: columnMap(outputs) };
  } else returns = { kind: "scalar" };
  return { schema, name: raw.name, params, returnsSet: raw.returns_set, returns, volatile: raw.volatile };
}

/** Reads the catalog of one schema. */
export async function loadCatalog(sql: Sql, schema: string): Promise<Catalog> {
  const [tableRows, functionRows, typeRows, settingRows] = await Promise.all([
    sql.unsafe<{ name: string; columns: string; primary_key: string }[]>(TABLES_SQL, [schema]),
    sql.unsafe<RawFunction[]>(FUNCTIONS_SQL, [schema]),
    sql.unsafe<{ name: string; ref: string }[]>(TYPES_SQL, [schema]),
    sql.unsafe<{ role: string; name: string; value: string }[]>(ROLE_SETTINGS_SQL),
  ]);
  const tables = new Map<string, Table>();
  for (const row of tableRows) {
    tables.set(row.name, {
      schema,
      name: row.name,
      columns: columnMap(JSON.parse(row.columns) as RawColumn[]),
      primaryKey: JSON.parse(row.primary_key) as string[],
    });
  }
  const functions = new Map<string, DbFunction[]>();
  for (const row of functionRows) {
    const overloads = functions.get(row.name) ?? [];
    overloads.push(toFunction(schema, row));
    functions.set(row.name, overloads);
  }
  const castTypes = new Map(typeRows.map((row) => [row.name, row.ref]));
  for (const [alias, name] of Object.entries(TYPE_ALIASES)) {
    const ref = castTypes.get(name);
    if (ref) castTypes.set(alias, ref);
  }
  // Rows come all-database first, then this database's: a later entry for a name replaces it.
  const perRole = new Map<string, Map<string, string>>();
  for (const row of settingRows) {
    const settings = perRole.get(row.role) ?? new Map<string, string>();
    settings.set(row.name, row.value);
    perRole.set(row.role, settings);
  }
  const roleSettings = new Map([...perRole].map(([role, settings]) => [role, [...settings]] as const));
  return { tables, functions, castTypes, roleSettings };
}

/**
 * Holds the current catalog and reloads it on demand. A reload asked for
 * while one runs is queued behind it (and shared by everyone asking
 * meanwhile), so the caller always waits for a read that started after it
 * asked: DDL committed before the call is visible once it settles.
 */
export class CatalogCache {
  readonly #load: () => Promise<Catalog>;
  #current: Catalog | undefined;
  #running: Promise<void> | undefined;
  #queued: Promise<void> | undefined;

  constructor(load: () => Promise<Catalog>) {
    this.#load = load;
  }

  get current(): Catalog {
    if (!this.#current) throw new Error("[testkit] schema cache used before it was loaded");
    return this.#current;
  }

  reload(): Promise<void> {
    if (!this.#running) return this.#start();
    const next = () => {
      this.#queued = undefined;
      return this.#start();
    };
    this.#queued ??= this.#running.then(next, next);
    return this.#queued;
  }

  #start(): Promise<void> {
    const running = this.#load().then((catalog) => {
      this.#current = catalog;
    });
    this.#running = running;
    const clear = () => {
      if (this.#running === running) this.#running = undefined;
    };
    running.then(clear, clear);
    return running;
  }
}
