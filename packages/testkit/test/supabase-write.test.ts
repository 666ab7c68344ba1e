import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Harness, startHarness } from "./fixtures/supabase/harness.js";

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h?.stop());

beforeEach(async () => {
  await h.sql`truncate people, notes, inbox, people_notes restart identity cascade`;
  await h.sql`insert into people (id, username, status, age) values (1, 'supabot', 'ONLINE', 30), (2, 'kiwi', 'OFFLINE', 25)`;
});

const people = () => h.probe("select * from people order by id");

describe("insert", () => {
  it("inserts one object with no Prefer: 201, empty body, defaults for omitted columns", async () => {
    const res = await h.anon.from("notes").insert({ body: "hello" });
    expect([res.status, res.statusText, res.data, res.error]).toEqual([201, "Created", null, null]);
    const [note] = (await h.probe("select body, kind from notes")) as { body: string; kind: string }[];
    expect(note).toEqual({ body: "hello", kind: "plain" });
    const raw = await h.rest("/notes", { method: "POST", body: '{"body":"x"}' });
    expect([raw.status, raw.text, raw.headers.get("content-type"), raw.headers.get("content-range")]).toEqual(
      [201, "", null, "*/*"],
    );
  });

  it("inserts many rows and returns them as PostgreSQL renders them", async () => {
    const rows = [
      { id: 3, username: "a", age: 1 },
      { id: 4, username: "b", status: "AWAY" },
    ];
    const res = await h.anon.from("people").insert(rows).select();
    expect(res.status).toBe(201);
    expect(res.data).toEqual(await h.probe("select * from people where id in (3, 4) order by id"));
    // A key missing from a row is NULL when columns= is sent (supabase-js does for arrays).
    expect(res.data?.[0]).toMatchObject({ status: null });
    expect(res.data?.[1]).toMatchObject({ age: null });
  });

  it("makes a key missing from one of many rows NULL, not the column default", async () => {
    const nulls = await h.anon.from("notes").insert([{ body: "c" }, { body: "d", kind: "k" }]);
    expect(nulls.error).toMatchObject({ code: "23502" });
    expect(nulls.status).toBe(400);
  });

  it("returns one object for .single()", async () => {
    const single = await h.anon
      .from("people")
      .insert({ id: 8, username: "h" })
      .select("id, username")
      .single();
    expect(single.data).toEqual({ id: 8, username: "h" });
  });

  it("rolls back a .single() insert that made two rows", async () => {
    const res = await h.anon
      .from("people")
      .insert([
        { id: 5, username: "x" },
        { id: 6, username: "y" },
      ])
      .select()
      .single();
    expect(res.status).toBe(406);
    expect(res.error).toMatchObject({ code: "PGRST116", details: "The result contains 2 rows" });
    expect(await h.probe("select id from people where id in (5, 6)")).toEqual([]);
  });

  it("maps constraint violations to PostgREST statuses", async () => {
    const dup = await h.anon.from("people").insert({ id: 1, username: "again" });
    expect(dup.status).toBe(409);
    expect(dup.error).toEqual({
      code: "23505",
      message: 'duplicate key value violates unique constraint "people_pkey"',
      details: "Key (id)=(1) already exists.",
      hint: null,
    });
    const fk = await h.anon.from("people_notes").insert({ id: 1, person_id: 99 });
    expect([fk.status, fk.error?.code]).toEqual([409, "23503"]);
    const check = await h.anon.from("people_notes").insert({ id: 1, person_id: 1, note: "" });
    expect([check.status, check.error?.code]).toEqual([400, "23514"]);
    const notNull = await h.anon.from("people").insert({ id: 9 });
    expect([notNull.status, notNull.error?.code]).toEqual([400, "23502"]);
  });

  it("inserts without SELECT rights when nothing is returned", async () => {
    const minimal = await h.anon.from("inbox").insert({ id: 1, message: "hi" });
    expect([minimal.status, minimal.error]).toEqual([201, null]);
    const shown = await h.anon.from("inbox").insert({ id: 2, message: "hi" }).select();
    expect([shown.status, shown.error?.code]).toEqual([401, "42501"]);
    expect(await h.probe("select id from inbox")).toEqual([{ id: 1 }]);
  });
});

describe("upsert", () => {
  it("merges on on_conflict: 200 when every row existed, 201 when one was new", async () => {
    const updated = await h.anon
      .from("people")
      .upsert({ id: 1, username: "supabot", status: "AWAY" }, { onConflict: "id" })
      .select();
    expect(updated.status).toBe(200);
    expect(updated.data).toEqual([
      { id: 1, username: "supabot", status: "AWAY", age: 30, nickname: null, data: null, tags: null },
    ]);
    const mixed = await h.anon.from("people").upsert(
      [
        { id: 2, username: "kiwi", status: "ONLINE" },
        { id: 3, username: "new", status: "ONLINE" },
      ],
      { onConflict: "id" },
    );
    expect([mixed.status, mixed.error]).toEqual([201, null]);
    expect(await h.probe("select id, status from people order by id")).toEqual([
      { id: 1, status: "AWAY" },
      { id: 2, status: "ONLINE" },
      { id: 3, status: "ONLINE" },
    ]);
    const raw = await h.rest("/people?on_conflict=id", {
      method: "POST",
      headers: { prefer: "resolution=merge-duplicates, return=representation" },
      body: '{"id":1,"username":"supabot","age":31}',
    });
    expect(raw.headers.get("preference-applied")).toBe("resolution=merge-duplicates, return=representation");
  });

  it("merges on other unique columns and reports a bad on_conflict", async () => {
    const merged = await h.anon
      .from("people")
      .upsert({ id: 1, username: "kiwi", age: 99 }, { onConflict: "username" })
      .select("id, age");
    expect(merged.error).toMatchObject({ code: "23505" });
    const byName = await h.anon
      .from("people")
      .upsert({ username: "kiwi", id: 2, age: 26 }, { onConflict: "username" })
      .select("id, age");
    expect(byName.data).toEqual([{ id: 2, age: 26 }]);
    const bad = await h.anon
      .from("people")
      .upsert({ id: 1, status: "x", username: "supabot" }, { onConflict: "status" });
    expect([bad.status, bad.error?.code]).toEqual([400, "42P10"]);
    const unknown = await h.anon.from("people").upsert({ id: 1, username: "s" }, { onConflict: "banana" });
    expect([unknown.status, unknown.error?.code]).toEqual([400, "42703"]);
  });
});

describe("update and delete", () => {
  it("updates matching rows: 204 by default, 200 with the rows, their span in Content-Range", async () => {
    const minimal = await h.anon.from("people").update({ age: 31 }).eq("id", 1);
    expect([minimal.status, minimal.data]).toEqual([204, null]);
    const shown = await h.anon.from("people").update({ status: "AWAY" }).gte("age", 25).select("id, status");
    expect(shown.status).toBe(200);
    const byId = [...(shown.data ?? [])].sort((a, b) => a.id - b.id);
    expect(byId).toEqual(await h.probe("select id, status from people order by id"));
    const raw = await h.rest("/people?id=eq.1", { method: "PATCH", body: '{"age":40}' });
    expect([raw.status, raw.headers.get("content-range")]).toEqual([204, "0-0/*"]);
    const nothing = await h.anon.from("people").update({ age: 1 }).eq("id", 99).select();
    expect([nothing.status, nothing.data]).toEqual([200, []]);
  });

  it("deletes matching rows and returns them when asked", async () => {
    const res = await h.anon.from("people").delete().in("id", [1, 2]).select("id");
    expect([res.status, res.data]).toEqual([200, [{ id: 1 }, { id: 2 }]]);
    const minimal = await h.anon.from("people").delete().eq("id", 1);
    expect(minimal.status).toBe(204);
    expect(await people()).toEqual([]);
  });

  it("refuses UPDATE or DELETE without a filter, as Supabase's pg-safeupdate does", async () => {
    const update = await h.service.from("people").update({ age: 1 }).neq("id", 0).select("id");
    expect(update.data?.length).toBe(2);
    const raw = await h.rest("/people", { method: "DELETE", headers: { apikey: h.stack.serviceRoleKey } });
    expect([raw.status, raw.json()]).toEqual([
      400,
      { code: "21000", message: "DELETE requires a WHERE clause", details: null, hint: null },
    ]);
    const patch = await h.rest("/people", { method: "PATCH", body: '{"age":2}' });
    expect((patch.json() as { message: string }).message).toBe("UPDATE requires a WHERE clause");
    expect((await people()) as unknown[]).toHaveLength(2);
  });
});

describe("bad bodies", () => {
  it("answers invalid JSON and mismatched keys with PGRST102, unknown keys with PGRST204", async () => {
    const invalid = await h.rest("/people", { method: "POST", body: "{not json" });
    expect([invalid.status, invalid.json()]).toEqual([
      400,
      { code: "PGRST102", message: "Empty or invalid json", details: null, hint: null },
    ]);
    const keys = await h.rest("/people", { method: "POST", body: '[{"id":5,"username":"a"},{"id":6}]' });
    expect((keys.json() as { message: string }).message).toBe("All object keys must match");
    const unknown = await h.anon.from("people").insert({ id: 5, username: "a", banana: 1 });
    expect([unknown.status, unknown.error]).toEqual([
      400,
      {
        code: "PGRST204",
        message: "Could not find the 'banana' column of 'people' in the schema cache",
        details: null,
        hint: null,
      },
    ]);
  });
});
