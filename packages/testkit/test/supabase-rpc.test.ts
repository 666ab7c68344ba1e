import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Harness, startHarness } from "./fixtures/supabase/harness.js";

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h?.stop());

beforeEach(async () => {
  await h.sql`truncate people, notes restart identity cascade`;
  await h.sql`
    insert into people (id, username, status, age) values
      (1, 'supabot', 'ONLINE', 30), (2, 'kiwi', 'OFFLINE', 25), (3, 'awailas', 'ONLINE', 41)`;
});

describe("rpc results", () => {
  it("returns a scalar as a bare JSON value, over POST and over GET without arguments", async () => {
    const post = await h.anon.rpc("get_status", { name_param: "supabot" });
    expect([post.status, post.data]).toEqual([200, "ONLINE"]);
    const get = await h.anon.rpc("my_role", {}, { get: true });
    expect([get.status, get.data]).toEqual([200, "anon"]);
    const missing = await h.rest("/rpc/get_status", { method: "POST", body: '{"name_param":"nobody"}' });
    expect([missing.status, missing.text, missing.headers.get("content-range")]).toEqual([
      200,
      "null",
      "0-0/*",
    ]);
  });

  it("returns a set of scalars as an array in the function's order, capped at db-max-rows", async () => {
    const three = await h.anon.rpc("countdown", { n: 3 });
    expect([three.status, three.data]).toEqual([200, [{ left: 3 }, { left: 2 }, { left: 1 }]]);
    const capped = await h.rest("/rpc/countdown", { method: "POST", body: '{"n":1200}' });
    expect([capped.status, JSON.parse(capped.text).length, capped.headers.get("content-range")]).toEqual([
      200,
      1000,
      "0-999/*",
    ]);
  });

  it("binds arguments by name and applies defaults", async () => {
    expect((await h.anon.rpc("add_them", { b: 2, a: 1 })).data).toBe(3);
    expect((await h.anon.rpc("add_them", { a: 1 })).data).toBe(11);
  });

  it("answers a void function with 204 and keeps its effect", async () => {
    const res = await h.anon.rpc("touch", { note: "seen" });
    expect([res.status, res.data, res.error]).toEqual([204, null, null]);
    const raw = await h.rest("/rpc/touch", { method: "POST", body: '{"note":"again"}' });
    expect([raw.status, raw.text, raw.headers.get("content-type")]).toEqual([204, "", null]);
    expect(await h.probe("select body from notes order by body")).toEqual([
      { body: "again" },
      { body: "seen" },
    ]);
  });

  it("sees the caller through auth.uid(), auth.jwt() and the request settings", async () => {
    const sub = "6f0e0f7c-3f3e-4c2b-9d7e-1c2b3a4d5e6f";
    const user = h.asUser(await h.stack.mintUserToken(sub, { email: "doc@clinic.example" }));
    expect((await user.rpc("whoami")).data).toBe(sub);
    expect((await user.rpc("my_claims")).data).toMatchObject({
      sub,
      role: "authenticated",
      email: "doc@clinic.example",
    });
    expect((await h.anon.rpc("my_role")).data).toBe("anon");
    expect((await h.anon.rpc("whoami")).data).toBeNull();
    const info = await h.anon.rpc("request_info");
    expect(info.data).toMatchObject({ method: "POST", path: "/rpc/request_info", role: "anon" });
    expect((info.data as { client_info: string }).client_info).toMatch(/^supabase-js/);
  });
});

describe("rpc with an application/octet-stream body", () => {
  it("hands the body, as sent, to the function's single unnamed bytea parameter", async () => {
    const body = Buffer.from([0, 255, 0x5c, 0x78, 0x0a, ...randomBytes(70_000)]);
    const res = await h.rest("/rpc/byte_summary", {
      method: "POST",
      headers: { "Content-Type": "application/octet-stream" },
      body,
    });
    expect([res.status, res.json()]).toEqual([
      200,
      { length: body.length, sha256: createHash("sha256").update(body).digest("hex") },
    ]);
  });

  it("answers 404 PGRST202 for a function without a single unnamed bytea parameter", async () => {
    const res = await h.rest("/rpc/add_them", {
      method: "POST",
      headers: { "Content-Type": "application/octet-stream" },
      body: Buffer.from("{}"),
    });
    expect([res.status, res.json()]).toEqual([
      404,
      {
        code: "PGRST202",
        message: "Could not find the function public.add_them in the schema cache",
        details:
          "Searched for the function public.add_them with a single unnamed bytea parameter, but no matches were found in the schema cache.",
        hint: null,
      },
    ]);
  });
});

describe("rpc errors", () => {
  it("answers an unknown function or argument set with 404 PGRST202", async () => {
    const unknown = await h.anon.rpc("nope", { a: 1, b: 2 });
    expect([unknown.status, unknown.error]).toEqual([
      404,
      {
        code: "PGRST202",
        message: "Could not find the function public.nope(a, b) in the schema cache",
        details:
          "Searched for the function public.nope with parameters a, b or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.",
        hint: null,
      },
    ]);
    const noArgs = await h.anon.rpc("get_status");
    expect(noArgs.error?.message).toBe(
      "Could not find the function public.get_status without parameters in the schema cache",
    );
    const wrongName = await h.anon.rpc("add_them", { x: 1 });
    expect(wrongName.error?.details).toBe(
      "Searched for the function public.add_them with parameter x or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.",
    );
  });

  it("forwards RAISE as 400 P0001 with detail and hint", async () => {
    const res = await h.anon.rpc("fail", { message: "no appointment on Sunday" });
    expect([res.status, res.error]).toEqual([
      400,
      {
        code: "P0001",
        message: "no appointment on Sunday",
        details: "raised on purpose",
        hint: "do not call fail",
      },
    ]);
  });

  it("runs GET calls read-only: a writing function fails with 405", async () => {
    const res = await h.anon.rpc("touch", {}, { get: true });
    expect([res.status, res.error?.code, res.error?.message]).toEqual([
      405,
      "25006",
      "cannot execute INSERT in a read-only transaction",
    ]);
  });

  it("refuses methods RPC does not take", async () => {
    const res = await h.rest("/rpc/touch", { method: "DELETE" });
    expect([res.status, (res.json() as { code: string; message: string }).message]).toEqual([
      405,
      "Cannot use the DELETE method on RPC",
    ]);
  });
});
