import type postgres from "postgres";

/** A column as PostgreSQL's catalog describes it. */
export interface DbColumn {
  table: string;
  column: string;
  /** format_type(): `uuid`, `numeric(4,1)`, `timestamp(3) with time zone`… */
  type: string;
  /** `e` for an ENUM type. */
  typtype: string;
  /** ENUM labels in sort order. */
  enum_values: string[] | null;
  not_null: boolean;
  /** The DEFAULT expression, or null. */
  default_expr: string | null;
  /** `s` for a generated column, `a`/`d` for identity: shapes the zod definitions cannot express. */
  generated: string;
  identity: string;
}

export interface DbForeignKey {
  table: string;
  columns: string[];
  references: string;
  ref_columns: string[];
  /** pg_constraint.confdeltype: a no action, r restrict, c cascade, n set null, d set default. */
  on_delete: string;
}

export interface DbIndex {
  table: string;
  name: string;
  unique: boolean;
  primary: boolean;
  /** Key columns in order; null entries are expressions. */
  columns: (string | null)[];
  partial: boolean;
}

export interface Catalog {
  columns: DbColumn[];
  foreignKeys: DbForeignKey[];
  indexes: DbIndex[];
  checks: { table: string; name: string }[];
}

/** Reads the public schema's tables, columns, foreign keys, indexes and CHECK constraints. */
export async function readCatalog(sql: postgres.Sql): Promise<Catalog> {
  const columns = await sql<DbColumn[]>`
    select c.relname as table, a.attname as column, format_type(a.atttypid, a.atttypmod) as type, t.typtype,
      case when t.typtype = 'e' then
        array(select e.enumlabel::text from pg_enum e where e.enumtypid = t.oid order by e.enumsortorder)
      end as enum_values,
      a.attnotnull as not_null, pg_get_expr(d.adbin, d.adrelid) as default_expr,
      a.attgenerated::text as generated, a.attidentity::text as identity
    from pg_attribute a
    join pg_class c on c.oid = a.attrelid
    join pg_type t on t.oid = a.atttypid
    left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
    where c.relnamespace = 'public'::regnamespace and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped
    order by c.relname, a.attnum`;
  const foreignKeys = await sql<DbForeignKey[]>`
    select c.relname as table, r.relname as references, con.confdeltype::text as on_delete,
      array(select a.attname::text from unnest(con.conkey) with ordinality k(n, o)
            join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.n order by k.o) as columns,
      array(select a.attname::text from unnest(con.confkey) with ordinality k(n, o)
            join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.n order by k.o) as ref_columns
    from pg_constraint con
    join pg_class c on c.oid = con.conrelid
    join pg_class r on r.oid = con.confrelid
    where con.contype = 'f' and c.relnamespace = 'public'::regnamespace`;
  const indexes = await sql<DbIndex[]>`
    select c.relname as table, ic.relname as name, i.indisunique as unique, i.indisprimary as primary,
      array(select a.attname::text from unnest(i.indkey::int2[]) with ordinality k(n, o)
            left join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.n and k.n > 0
            where k.o <= i.indnkeyatts order by k.o) as columns,
      i.indpred is not null as partial
    from pg_index i
    join pg_class c on c.oid = i.indrelid
    join pg_class ic on ic.oid = i.indexrelid
    where c.relnamespace = 'public'::regnamespace`;
  const checks = await sql<{ table: string; name: string }[]>`
    select c.relname as table, con.conname as name
    from pg_constraint con join pg_class c on c.oid = con.conrelid
    where con.contype = 'c' and c.relnamespace = 'public'::regnamespace`;
  return { columns, foreignKeys, indexes, checks };
}
