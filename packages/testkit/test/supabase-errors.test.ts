import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Harness, startHarness } from "./fixtures/supabase/harness.js";

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h?.stop());

beforeEach(async () => {
  await h.sql`truncate people restart identity cascade`;
  await h.sql`insert into people (id, username, status) values (1, 'supabot', 'ONLINE'), (2, 'kiwi', 'OFFLINE')`;
});

type Body = { code: string; message: string; details: string | null; hint: string | null };
const body = (res: { json(): unknown }) => res.json() as Body;

describe("bad requests get PostgREST's status and body", () => {
  it("unknown table: 404 PGRST205", async () => {
    const res = await h.anon.from("peeple").select();
    expect([res.status, res.error]).toEqual([
      404,
      {
        code: "PGRST205",
        message: "Could not find the table 'public.peeple' in the schema cache",
        details: null,
        hint: null,
      },
    ]);
  });

  it("unknown columns in filters and order: 400 42703", async () => {
    expect((await h.anon.from("people").select().eq("banana", 1)).error?.message).toBe(
      "column people.banana does not exist",
    );
    expect((await h.anon.from("people").select().order("banana")).error?.code).toBe("42703");
  });

  it("malformed filters, order and select: 400 PGRST100", async () => {
    const cases: [string, string, string][] = [
      [
        "/people?id=5",
        '"failed to parse filter (5)" (line 1, column 1)',
        'unexpected "5" expecting "not" or operator (eq, gt, ...)',
      ],
      [
        "/people?id=is.banana",
        '"failed to parse filter (is.banana)" (line 1, column 4)',
        'unexpected "b" expecting null or trilean value (unknown, true, false)',
      ],
      [
        "/people?id=in.1,2",
        '"failed to parse filter (in.1,2)" (line 1, column 4)',
        'unexpected "1" expecting "("',
      ],
      [
        "/people?order=id.sideways",
        '"failed to parse order (id.sideways)" (line 1, column 4)',
        'unexpected "s" expecting "asc", "desc", "nullsfirst" or "nullslast"',
      ],
      [
        "/people?select=id,,name",
        '"failed to parse select parameter (id,,name)" (line 1, column 4)',
        'unexpected "," expecting field name (* or [a..z0..9_$])',
      ],
    ];
    for (const [path, message, details] of cases) {
      const res = await h.rest(path);
      expect([path, res.status, body(res)]).toEqual([
        path,
        400,
        { code: "PGRST100", message, details, hint: null },
      ]);
    }
  });

  it("embedding is not implemented: 400, never a wrong answer", async () => {
    const embed = await h.anon.from("people").select("id, people_notes(*)");
    expect([embed.status, embed.error?.code]).toEqual([400, "PGRST127"]);
    const nested = await h.rest("/people?people_notes.id=eq.1");
    expect([nested.status, body(nested).code]).toEqual([400, "PGRST108"]);
  });

  it("unsupported media and paths; unknown preferences are ignored", async () => {
    const csv = await h.rest("/people", { headers: { accept: "text/csv" } });
    expect([csv.status, body(csv).message]).toEqual([
      406,
      "None of these media types are available: text/csv",
    ]);
    const deep = await h.rest("/people/1");
    expect([deep.status, body(deep).code]).toEqual([404, "PGRST125"]);
    const outside = await fetch(`${h.stack.url}/storage/v1/bucket`, { headers: { apikey: h.stack.anonKey } });
    expect([outside.status, await outside.json()]).toEqual([
      404,
      { message: "no Route matched with those values" },
    ]);
    const lenient = await h.rest("/people", { headers: { prefer: "shiny=yes" } });
    expect(lenient.status).toBe(200);
  });

  it("what PostgREST does and this gateway leaves out: 400 PGRST127, never a wrong answer", async () => {
    type Init = RequestInit & { headers?: Record<string, string> };
    const post = (body: string, prefer?: string): Init => ({
      method: "POST",
      body,
      ...(prefer !== undefined && { headers: { prefer } }),
    });
    const cases: [string, Init, RegExp][] = [
      ["/people?username=like.*bot*", {}, /^The filter operator 'like' is not supported/],
      ["/people?tags=cs.{a}", {}, /^The filter operator 'cs' is not supported/],
      ["/people?username=fts(english).bot", {}, /^The filter operator 'fts\(english\)'/],
      ["/people?age=is.not_null", {}, /^'is.not_null' is not supported/],
      ["/people?or=(id.eq.1,id.eq.2)", {}, /^'or' filters are not supported/],
      ["/people?select=name:username", {}, /^Renaming/],
      ["/people?select=age::text", {}, /^Casts/],
      ["/people?select=data->>lang", {}, /^JSON paths/],
      ["/people?data->>lang=eq.es", {}, /^JSON paths/],
      ["/people?order=data->level", {}, /^JSON paths/],
      ["/people", { headers: { prefer: "count=exact" } }, /^Prefer: count=exact is not supported/],
      ["/people", { headers: { range: "0-1" } }, /^The Range header is not supported/],
      ["/people", { method: "PUT", body: "{}" }, /^PUT is not supported/],
      ["/notes", post('[{"body":"a"}]', "missing=default"), /^Prefer: missing=default/],
      ["/people", post('{"id":3,"username":"c"}', "return=headers-only"), /^Prefer: return=headers-only/],
      [
        "/people?on_conflict=id",
        post('{"id":1,"username":"x"}', "resolution=ignore-duplicates"),
        /^Prefer: resolution=ignore-duplicates/,
      ],
      ["/people", post('{"id":1,"username":"x"}', "resolution=merge-duplicates"), /without on_conflict/],
      [
        "/people?id=gt.0",
        { method: "DELETE", headers: { prefer: "handling=strict, max-affected=1" } },
        /^Prefer: handling=strict/,
      ],
      ["/rpc/add_them?a=1", {}, /^Query parameters on rpc\/ \('a'\)/],
      ["/rpc/people_older_than", post("{}"), /returns rows/],
      ["/rpc/person_named", post('{"name":"kiwi"}'), /returns rows/],
      ["/rpc/sum_all", post('{"nums":[1,2]}'), /is VARIADIC/],
      ["/rpc/echo", post('{"a":1}'), /single unnamed json\/jsonb parameter/],
    ];
    for (const [path, init, details] of cases) {
      const res = await h.rest(path, init);
      expect([path, res.status, body(res).code, body(res).message]).toEqual([
        path,
        400,
        "PGRST127",
        "Feature not implemented",
      ]);
      expect(body(res).details, path).toMatch(details);
    }
    const head = await h.rest("/people", { method: "HEAD" });
    expect([head.status, head.headers.get("proxy-status")]).toEqual([400, "PostgREST; error=PGRST127"]);
    expect(await h.probe("select id, username, status from people order by id")).toEqual([
      { id: 1, username: "supabot", status: "ONLINE" },
      { id: 2, username: "kiwi", status: "OFFLINE" },
    ]);
  });

  it("every error body has exactly code, message, details and hint", async () => {
    for (const path of ["/nope", "/people?id=eq.x", "/people?id=5", "/rpc/nope"]) {
      const res = await h.rest(path);
      expect(Object.keys(res.json() as object)).toEqual(["code", "message", "details", "hint"]);
      expect(res.headers.get("content-type")).toBe("application/json; charset=utf-8");
      expect(res.text).not.toMatch(/\bat \S+:\d+/);
    }
  });
});

describe("hostile input never reaches SQL as code", () => {
  const HOSTILE = [
    "'; drop table people; --",
    '"); drop table people; --',
    ")",
    "a'b\"c\\d",
    "$1::text",
    "Ñandú 👁️ ʘ‿ʘ",
    // Supabase's gateway refuses URLs past ~8 kB; bodies take far more (below).
    "x".repeat(4_000),
  ];

  it("treats hostile filter values as data", async () => {
    for (const value of HOSTILE) {
      const res = await h.anon.from("people").select("id").eq("username", value);
      expect([res.status, res.data]).toEqual([200, []]);
      // supabase-js does not escape quotes inside in() values; send them quoted and escaped by hand.
      const quoted = `"${value.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
      const listed = await h.anon.from("people").select("id").filter("username", "in", `(${quoted},kiwi)`);
      expect(listed.data).toEqual([{ id: 2 }]);
    }
    expect(await h.probe("select count(*)::int as n from people")).toEqual([{ n: 2 }]);
  });

  it("round-trips hostile values through insert, update and rpc unchanged", async () => {
    const values = [...HOSTILE, "y".repeat(100_000)];
    const rows = values.map((value, i) => ({ id: 10 + i, username: value, status: value }));
    const inserted = await h.anon.from("people").insert(rows).select("username");
    expect(inserted.data).toEqual(rows.map((r) => ({ username: r.username })));
    const patched = await h.anon
      .from("people")
      .update({ nickname: HOSTILE[1] })
      .eq("username", HOSTILE[0] as string)
      .select("nickname");
    expect(patched.data).toEqual([{ nickname: HOSTILE[1] }]);
    for (const value of values) {
      expect((await h.anon.rpc("get_status", { name_param: value })).data).toBe(value);
    }
  });

  it("treats hostile identifiers as names that do not exist", async () => {
    const table = await h.anon.from('people"; drop table people; --').select();
    expect([table.status, table.error?.code]).toEqual([404, "PGRST205"]);
    const column = await h.rest(`/people?select=${encodeURIComponent('id,"x\\" from people; --"')}`);
    expect(body(column).message).toBe('column people.x" from people; -- does not exist');
    const nul = await h.rest(`/people?select=${encodeURIComponent("a\u0000b")}`);
    expect([nul.status, body(nul).code]).toEqual([400, "PGRST100"]);
    const quotedColumn = await h.rest(`/people?${encodeURIComponent('"id\\" or 1=1 --"')}=eq.1`);
    expect(body(quotedColumn).code).toBe("42703");
    // Like PostgREST, the key parser stops at the first character a name cannot hold and ignores the rest.
    const trailing = await h.rest(`/people?select=id&${encodeURIComponent('id" or 1=1 --')}=eq.1`);
    expect(trailing.json()).toEqual([{ id: 1 }]);
    const fn = await h.anon.rpc("get_status; drop table people", {});
    expect(fn.error?.code).toBe("PGRST202");
    const arg = await h.anon.rpc("get_status", { "name_param := 'x'); drop table people; --": 1 });
    expect(arg.error?.code).toBe("PGRST202");
    expect(await h.probe("select count(*)::int as n from people")).toEqual([{ n: 2 }]);
  });
});

describe("schema cache", () => {
  it("sees tables created after start (DDL notifies; a miss reloads once)", async () => {
    await h.sql`create table public.late_arrival (id int primary key, v text)`;
    await h.sql`insert into late_arrival values (1, 'here')`;
    expect((await h.anon.from("late_arrival").select("v")).data).toEqual([{ v: "here" }]);
    await h.sql`alter table late_arrival add column w text default 'new'`;
    await h.stack.reloadSchema();
    expect((await h.anon.from("late_arrival").select("w")).data).toEqual([{ w: "new" }]);
    await h.sql`drop table late_arrival`;
  });
});
