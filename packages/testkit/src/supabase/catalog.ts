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
}

export interface Table {
  readonly schema: string;
  readonly name: string;
  readonly columns: ReadonlyMap<string, Column>;
}

/** An input parameter (`IN`, `INOUT` or `VARIADIC`). */
export interface FunctionParam {
  /** Empty for an unnamed parameter. */
  readonly name: string;
  /** `i` in, `b` inout, `v` variadic. */
  readonly mode: "i" | "b" | "v";
  readonly type: string;
  /** Bare `pg_type.typname`, e.g. `jsonb`, `_int4`. */
  readonly typeName: string;
  /** Readable type, used in PGRST203's message. */
  readonly displayType: string;
  readonly hasDefault: boolean;
}

export interface DbFunction {
  readonly schema: string;
  readonly name: string;
  readonly params: readonly FunctionParam[];
  /**
   * `rows`: SETOF or TABLE of a composite type, a composite type or OUT parameters, which PostgREST
   * renders as rows; `scalars`: SETOF a base type, rendered as an array of its values.
   */
  readonly returns: "void" | "scalar" | "scalars" | "rows";
  readonly volatile: boolean;
}

export interface Catalog {
  readonly tables: ReadonlyMap<string, Table>;
  /** Overloads by name. */
  readonly functions: ReadonlyMap<string, readonly DbFunction[]>;
  /**
   * PostgREST's impersonated role settings: per role the gateway may switch to, the settings of
   * `ALTER ROLE … SET` (this database's over every database's), applied to each request's
   * transaction. Supabase's `statement_timeout` for `anon` (3 s) and `authenticated` (8 s) live here.
   */
  readonly roleSettings: ReadonlyMap<string, readonly (readonly [string, string])[]>;
}

const TYPE_REF = `quote_ident(tn.nspname) || '.' || quote_ident(t.typname)`;

const TABLES_SQL = `
  select c.relname as name,
    coalesce((
      select json_agg(json_build_object('name', a.attname, 'type', ${TYPE_REF}) order by a.attnum)
      from pg_attribute a
      join pg_type t on t.oid = a.atttypid
      join pg_namespace tn on tn.oid = t.typnamespace
      where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    ), '[]')::text as columns
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = $1::text and c.relkind in ('r', 'v', 'm', 'f', 'p')`;

const FUNCTIONS_SQL = `
  select p.proname as name, p.provolatile = 'v' as volatile,
    case when rt.typtype = 'p' and rt.typname = 'void' then 'void'
      when rt.typtype = 'c' or rt.typname = 'record' then 'rows'
      when p.proretset then 'scalars'
      else 'scalar' end as returns,
    p.pronargs::int as nargs, p.pronargdefaults::int as ndefaults,
    coalesce((
      select json_agg(json_build_object(
        'name', coalesce(x.name, ''), 'mode', coalesce(x.mode::text, 'i'), 'type', ${TYPE_REF},
        'typeName', t.typname, 'displayType', format_type(t.oid, null)) order by x.ord)
      from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]), p.proargmodes::text[], p.proargnames)
        with ordinality as x(type, mode, name, ord)
      join pg_type t on t.oid = x.type
      join pg_namespace tn on tn.oid = t.typnamespace
      where coalesce(x.mode::text, 'i') in ('i', 'b', 'v')
    ), '[]')::text as params
  from pg_proc p
  join pg_namespace n on n.oid = p.pronamespace
  join pg_type rt on rt.oid = p.prorettype
  where n.nspname = $1::text and p.prokind = 'f'`;

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

interface RawFunction {
  name: string;
  volatile: boolean;
  returns: DbFunction["returns"];
  nargs: number;
  ndefaults: number;
  params: string;
}

function toFunction(schema: string, raw: RawFunction): DbFunction {
  const inputs = JSON.parse(raw.params) as Omit<FunctionParam, "hasDefault">[];
  // Defaults belong to the last `ndefaults` input parameters (pg_proc.pronargdefaults).
  const params = inputs.map((p, i) => ({ ...p, hasDefault: i >= raw.nargs - raw.ndefaults }));
  return { schema, name: raw.name, params, returns: raw.returns, volatile: raw.volatile };
}

/** Reads the catalog of one schema. */
export async function loadCatalog(sql: Sql, schema: string): Promise<Catalog> {
  const [tableRows, functionRows, settingRows] = await Promise.all([
    sql.unsafe<{ name: string; columns: string }[]>(TABLES_SQL, [schema]),
    sql.unsafe<RawFunction[]>(FUNCTIONS_SQL, [schema]),
    sql.unsafe<{ role: string; name: string; value: string }[]>(ROLE_SETTINGS_SQL),
  ]);
  const tables = new Map<string, Table>();
  for (const row of tableRows) {
    const columns = JSON.parse(row.columns) as Column[];
    tables.set(row.name, { schema, name: row.name, columns: new Map(columns.map((c) => [c.name, c])) });
  }
  const functions = new Map<string, DbFunction[]>();
  for (const row of functionRows) {
    const overloads = functions.get(row.name) ?? [];
    overloads.push(toFunction(schema, row));
    functions.set(row.name, overloads);
  }
  // Rows come all-database first, then this database's: a later entry for a name replaces it.
  const perRole = new Map<string, Map<string, string>>();
  for (const row of settingRows) {
    const settings = perRole.get(row.role) ?? new Map<string, string>();
    settings.set(row.name, row.value);
    perRole.set(row.role, settings);
  }
  const roleSettings = new Map([...perRole].map(([role, settings]) => [role, [...settings]] as const));
  return { tables, functions, roleSettings };
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
