import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type PostgresServer, startPostgres } from "../src/postgres.js";
import { checkSafeUpdate, type SafeUpdateReport } from "../src/supabase/safeupdate.js";

let server: PostgresServer;
let report: SafeUpdateReport;

const FUNCTIONS = `
create table t (id int, a int);
create table y (id int, b int);

create function public.update_all() returns void language plpgsql as $$
begin
  update t set a = 1;
end $$;

create function public.update_one(p_id int) returns void language plpgsql as $$
begin
  update t set a = 1 where id = p_id;
  update t set a = 2 where true;
end $$;

create function public.delete_in_branch(p_wipe boolean) returns int language plpgsql as $$
declare n int := 0;
begin
  if p_wipe then
    delete from t;
  else
    n := (select count(*) from t);
  end if;
  return n;
end $$;

create function public.cte_update() returns setof int language plpgsql as $$
begin
  return query with changed as (update t set a = a + 1 returning id) select id from changed;
end $$;

create function public.dyn_update(p_table text, p_cols text, p_ids int[]) returns void language plpgsql as $$
begin
  execute format('UPDATE public.%I x SET (%s) = (SELECT %s FROM y) FROM unnest($1) c WHERE x.id = c.row_id',
    p_table, p_cols, p_cols) using p_ids;
end $$;

create function public.dyn_delete(p_table text) returns void language plpgsql as $$
begin
  execute format('DELETE FROM public.%I', p_table);
end $$;

create function public.dyn_concat(v text) returns void language plpgsql as $$
begin
  execute 'UPDATE t SET a = 1 ' || v;
  execute 'SELECT 1 ' || v;
end $$;

create procedure public.proc_literal() language plpgsql as $$
begin
  execute 'delete from y';
end $$;

create function public.atomic_update() returns void language sql
begin atomic
  update t set a = 1;
  delete from y where b = 2;
end;

create function public.string_delete() returns void language sql as $$ delete from t where a = 1 $$;

-- libpg-query knows no user types: an enum or array in an INTO list, or %ROWTYPE, must not stop the check.
create type public.eye as enum ('OD', 'OS');
create type public.pair as (a int, b int);
create function public.typed_delete(p public.pair[], out kept public.pair[], out side eye) language plpgsql as $$
declare v_t t%rowtype;
begin
  select p, 'OD' into kept, side;
  v_t.a := 1;
  delete from t;
end $$;

create function public.wipe_señal() returns trigger language plpgsql as $$
begin
  delete from y; -- señal
  return new;
end $$;
`;

beforeAll(async () => {
  server = await startPostgres();
  const sql = postgres(await server.createDatabase("safeupdate"), { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(FUNCTIONS);
    report = await checkSafeUpdate(sql);
  } finally {
    await sql.end();
  }
});
afterAll(() => server?.stop());

describe("checkSafeUpdate", () => {
  it("reports every UPDATE/DELETE without WHERE, static and dynamic, in PL/pgSQL and SQL functions", () => {
    expect(report.violations.map(({ fn, statement, dynamic }) => ({ fn, statement, dynamic }))).toEqual([
      { fn: "public.atomic_update()", statement: "UPDATE", dynamic: false },
      { fn: "public.cte_update()", statement: "UPDATE", dynamic: false },
      { fn: "public.delete_in_branch(boolean)", statement: "DELETE", dynamic: false },
      { fn: "public.dyn_delete(text)", statement: "DELETE", dynamic: true },
      { fn: "public.proc_literal()", statement: "DELETE", dynamic: true },
      { fn: "public.typed_delete(pair[])", statement: "DELETE", dynamic: false },
      { fn: "public.update_all()", statement: "UPDATE", dynamic: false },
      { fn: 'public."wipe_señal"()', statement: "DELETE", dynamic: false },
    ]);
  });

  it("shows the offending statement alone, with whitespace collapsed", () => {
    const sqlOf = (fn: string) => report.violations.find((v) => v.fn === fn)?.sql;
    expect(sqlOf("public.atomic_update()")).toBe("UPDATE t SET a = 1");
    expect(sqlOf("public.cte_update()")).toBe(
      "with changed as (update t set a = a + 1 returning id) select id from changed",
    );
    expect(sqlOf("public.dyn_delete(text)")).toBe("DELETE FROM public.%I");
    expect(sqlOf('public."wipe_señal"()')).toBe("delete from y");
  });

  it("lists dynamic SQL it cannot check only when it mentions UPDATE or DELETE", () => {
    expect(report.unchecked).toEqual([
      {
        fn: "public.dyn_concat(text)",
        reason: "EXECUTE of neither a literal nor a format() template: 'UPDATE t SET a = 1 ' || v",
      },
    ]);
  });
});
