import { get } from "node:http";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Harness, startHarness } from "./fixtures/supabase/harness.js";

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h?.stop());

beforeEach(async () => {
  await h.sql`truncate people, kinds, people_notes restart identity cascade`;
  await h.sql`
    insert into people (id, username, status, age, nickname, data, tags) values
      (1, 'supabot', 'ONLINE', 30, null, '{"lang": "es", "level": 3}', '{a,b}'),
      (2, 'kiwicopple', 'OFFLINE', 25, 'kiwi', '{"lang": "en", "level": 1}', '{b}'),
      (3, 'awailas', 'ONLINE', null, 'a,b', null, '{}'),
      (4, 'dragarcia', 'AWAY', 41, 'd(r)g', '{"lang": "es"}', '{c}'),
      (5, 'Núñez', 'OFFLINE', 25, 'x"y', '{"lang": "pt"}', null)`;
  await h.sql`
    insert into kinds values (
      1, 1.500, 9007199254740993, 0.1, '2024-02-29', '2024-01-02 03:04:05.678+02', '2024-01-02 03:04:05',
      '[1,5)', '[2024-01-01 00:00+00,2024-02-01 00:00+00)', '{"a": [1, 2.50], "b": {"c": null}}',
      '{"raw":  true}', '{a,"b c",NULL}', '{1,2,3}', true, 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      'mixed', 'weird')`;
  await h.sql`insert into kinds (id) values (2)`;
});

describe("select and JSON rendering", () => {
  it("renders every type exactly as PostgreSQL does", async () => {
    const raw = await h.rest("/kinds?select=*&order=id");
    const [expected] = await h.sql<{ body: string }[]>`
      select coalesce(json_agg(k), '[]')::text as body from (select * from kinds order by id) k`;
    expect(raw.status).toBe(200);
    expect(raw.text).toBe(expected?.body);
    expect(raw.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(raw.headers.get("content-range")).toBe("0-1/*");
    const { data } = await h.anon.from("kinds").select("*").order("id");
    expect(data).toEqual(await h.probe("select * from kinds order by id"));
    // Supabase runs in UTC, whatever TZ the machine running the tests has.
    expect(data?.[0]).toMatchObject({ at: "2024-01-02T01:04:05.678+00:00", amount: 1.5, span: "[1,5)" });
  });

  it("projects columns and quoted names", async () => {
    const { data, error } = await h.anon.from("people").select("id, username, data").order("id").limit(2);
    expect(error).toBeNull();
    expect(data).toEqual(await h.probe("select id, username, data from people order by id limit 2"));
    const quoted = await h.anon.from("kinds").select('"Mixed Case", "we\\"ird"').eq("id", 1);
    expect(quoted.data).toEqual([{ "Mixed Case": "mixed", 'we"ird': "weird" }]);
  });

  it("answers an unknown column with PostgreSQL's 42703", async () => {
    const { error, status } = await h.anon.from("people").select("banana");
    expect(status).toBe(400);
    expect(error).toEqual({
      code: "42703",
      message: "column people.banana does not exist",
      details: null,
      hint: null,
    });
  });
});

describe("filters", () => {
  const ids = async (query: PromiseLike<{ data: { id: number }[] | null; error: unknown }>) => {
    const { data, error } = await query;
    expect(error).toBeNull();
    return (data ?? []).map((row) => row.id).sort((a, b) => a - b);
  };
  const people = () => h.anon.from("people").select("id");

  it("compares with eq, neq, gt, gte, lt, lte", async () => {
    expect(await ids(people().eq("status", "ONLINE"))).toEqual([1, 3]);
    expect(await ids(people().neq("status", "ONLINE"))).toEqual([2, 4, 5]);
    expect(await ids(people().gt("age", 25))).toEqual([1, 4]);
    expect(await ids(people().gte("age", 25))).toEqual([1, 2, 4, 5]);
    expect(await ids(people().lt("age", 30))).toEqual([2, 5]);
    expect(await ids(people().lte("age", 30))).toEqual([1, 2, 5]);
    expect(await ids(people().eq("age", 25).eq("status", "OFFLINE"))).toEqual([2, 5]);
  });

  it("takes in lists with commas, parentheses and quotes literally", async () => {
    expect(await ids(people().in("nickname", ["a,b", "d(r)g", 'x"y']))).toEqual([3, 4, 5]);
    expect(await ids(people().in("id", [1, 3]))).toEqual([1, 3]);
    expect(await ids(people().in("id", []))).toEqual([]);
    expect(await ids(people().not("id", "in", "(1,2)"))).toEqual([3, 4, 5]);
  });

  it("tests is null / not null and keeps eq.null a string", async () => {
    expect(await ids(people().is("age", null))).toEqual([3]);
    expect(await ids(people().not("age", "is", null))).toEqual([1, 2, 4, 5]);
    await h.sql`update people set nickname = 'null' where id = 1`;
    expect(await ids(people().eq("nickname", null as unknown as string))).toEqual([1]);
  });

  it("negates every filter with not.", async () => {
    expect(await ids(people().not("status", "eq", "ONLINE").not("age", "gt", 30))).toEqual([2, 5]);
    expect(await ids(people().filter("id", "not.in", '("1","3")'))).toEqual([2, 4, 5]);
  });

  it("rejects a value of the wrong type like PostgreSQL", async () => {
    const { status, error } = await people().eq("id", "abc");
    expect(status).toBe(400);
    expect(error).toMatchObject({ code: "22P02", message: 'invalid input syntax for type integer: "abc"' });
  });
});

describe("order and paging", () => {
  it("orders by several columns with null placement", async () => {
    const { data } = await h.anon
      .from("people")
      .select("id")
      .order("age", { ascending: false, nullsFirst: false })
      .order("id", { ascending: true });
    expect(data).toEqual(await h.probe("select id from people order by age desc nulls last, id asc"));
    const nullsFirst = await h.anon
      .from("people")
      .select("id")
      .order("age", { nullsFirst: true })
      .order("id");
    expect(nullsFirst.data?.map((r) => r.id)).toEqual([3, 2, 5, 1, 4]);
  });

  it("pages with range(): offset and limit", async () => {
    const page = await h.anon.from("people").select("id").order("id").range(1, 2);
    expect([page.status, page.data]).toEqual([200, [{ id: 2 }, { id: 3 }]]);
    const raw = await h.rest("/people?select=id&order=id&offset=1&limit=2");
    expect(raw.headers.get("content-range")).toBe("1-2/*");
    const all = await h.rest("/people?select=id");
    expect([all.status, all.headers.get("content-range")]).toEqual([200, "0-4/*"]);
  });

  it("answers past the end with [] and a negative limit with 416", async () => {
    const past = await h.rest("/people?offset=10");
    expect([past.status, past.text, past.headers.get("content-range")]).toEqual([200, "[]", "*/*"]);
    const negative = await h.rest("/people?limit=-1");
    expect([negative.status, negative.json()]).toEqual([
      416,
      {
        code: "PGRST103",
        message: "Requested range not satisfiable",
        details: "Limit should be greater than or equal to zero.",
        hint: null,
      },
    ]);
  });

  it("honours limit=0", async () => {
    const zero = await h.rest("/people?limit=0");
    expect([zero.status, zero.text]).toEqual([200, "[]"]);
  });

  it("caps reads at Supabase's 1000 rows", async () => {
    await h.sql`insert into people (id, username) select g, 'bulk' || g from generate_series(100, 1599) g`;
    const { data, status } = await h.anon.from("people").select("id");
    expect([data?.length, status]).toEqual([1000, 200]);
    const next = await h.anon.from("people").select("id").order("id").range(1000, 1999);
    expect(next.data?.length).toBe(505);
  });
});

describe("singular responses", () => {
  it("returns one object, or 406 PGRST116 with PostgREST's wording", async () => {
    const one = await h.anon.from("people").select("username").eq("id", 1).single();
    expect([one.status, one.data]).toEqual([200, { username: "supabot" }]);
    const none = await h.anon.from("people").select().eq("id", 99).single();
    expect(none.status).toBe(406);
    expect(none.error).toEqual({
      code: "PGRST116",
      message: "Cannot coerce the result to a single JSON object",
      details: "The result contains 0 rows",
      hint: null,
    });
    const many = await h.anon.from("people").select().eq("status", "ONLINE").single();
    expect(many.error?.details).toBe("The result contains 2 rows");
    const raw = await h.rest("/people?id=eq.1&select=id", {
      headers: { accept: "application/vnd.pgrst.object+json" },
    });
    expect(raw.headers.get("content-type")).toBe("application/vnd.pgrst.object+json; charset=utf-8");
    expect(raw.text).toBe('{"id":1}');
  });

  it("supports maybeSingle()", async () => {
    expect((await h.anon.from("people").select("id").eq("id", 99).maybeSingle()).data).toBeNull();
    expect((await h.anon.from("people").select("id").eq("id", 2).maybeSingle()).data).toEqual({ id: 2 });
  });
});

describe("compression, as Supabase's gateway (Envoy) does", () => {
  /** The raw answer to GET /rest/v1/people with `accept-encoding`, bytes as sent. */
  const raw = (acceptEncoding: string) =>
    new Promise<{ encoding: string | undefined; vary: string | undefined; body: Buffer }>(
      (resolve, reject) => {
        get(
          `${h.stack.url}/rest/v1/people?select=id,username&order=id`,
          { headers: { apikey: h.stack.anonKey, "accept-encoding": acceptEncoding } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (chunk: Buffer) => chunks.push(chunk));
            res.on("end", () =>
              resolve({
                encoding: res.headers["content-encoding"],
                vary: res.headers.vary,
                body: Buffer.concat(chunks),
              }),
            );
          },
        ).on("error", reject);
      },
    );

  it("gzips an answer for a client that accepts gzip, and only for one", async () => {
    const plain = await raw("identity");
    expect(plain.encoding).toBeUndefined();
    const rows = JSON.parse(plain.body.toString());
    expect(rows).toHaveLength(5);
    const zipped = await raw("gzip, deflate, br");
    expect([zipped.encoding, zipped.vary]).toEqual(["gzip", "Accept-Encoding"]);
    expect(JSON.parse(gunzipSync(zipped.body).toString())).toEqual(rows);
    expect((await raw("gzip;q=0, deflate")).encoding).toBeUndefined();
    expect((await raw("br;q=1, gzip;q=0.5")).encoding).toBe("gzip");
    // supabase-js (fetch) asks for it and inflates it by itself.
    expect((await h.anon.from("people").select("id").order("id")).data).toEqual(
      rows.map(({ id }: { id: number }) => ({ id })),
    );
  });
});
