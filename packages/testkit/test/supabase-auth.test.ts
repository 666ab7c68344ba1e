import { SignJWT } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Harness, startHarness } from "./fixtures/supabase/harness.js";

let h: Harness;
const ALICE = "11111111-1111-4111-8111-111111111111";
const BOB = "22222222-2222-4222-8222-222222222222";

beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h?.stop());

beforeEach(async () => {
  await h.sql`truncate todos, secrets restart identity`;
  await h.sql`
    insert into todos (owner, title, is_public) values
      (${ALICE}, 'alice private', false), (${ALICE}, 'alice public', true), (${BOB}, 'bob private', false)`;
  await h.sql`insert into secrets values (1, 'the combination')`;
});

const titles = (rows: { title: string }[] | null) => (rows ?? []).map((r) => r.title).sort();

describe("row-level security through supabase-js", () => {
  it("shows a user only their rows, anon the public ones, service_role everything", async () => {
    const alice = h.asUser(await h.stack.mintUserToken(ALICE));
    const bob = h.asUser(await h.stack.mintUserToken(BOB));
    expect(titles((await alice.from("todos").select("title")).data)).toEqual([
      "alice private",
      "alice public",
    ]);
    expect(titles((await bob.from("todos").select("title")).data)).toEqual(["bob private"]);
    expect(titles((await h.anon.from("todos").select("title")).data)).toEqual(["alice public"]);
    expect(titles((await h.service.from("todos").select("title")).data)).toEqual(
      titles((await h.probe("select title from todos")) as { title: string }[]),
    );
  });

  it("writes as the user: auth.uid() defaults the owner, policies reject others' rows", async () => {
    const bob = h.asUser(await h.stack.mintUserToken(BOB));
    const mine = await bob.from("todos").insert({ title: "bob new" }).select("owner").single();
    expect(mine.data).toEqual({ owner: BOB });
    const forged = await bob.from("todos").insert({ title: "as alice", owner: ALICE });
    expect([forged.status, forged.error?.code, forged.error?.message]).toEqual([
      403,
      "42501",
      'new row violates row-level security policy for table "todos"',
    ]);
    const hijack = await bob
      .from("todos")
      .update({ title: "mine now" })
      .eq("title", "alice private")
      .select();
    expect([hijack.status, hijack.data]).toEqual([200, []]);
    expect(await h.probe("select title from todos where owner = $1 order by title", [ALICE])).toEqual([
      { title: "alice private" },
      { title: "alice public" },
    ]);
  });

  it("answers a missing grant with 401 for anon and 403 for a user", async () => {
    const anon = await h.anon.from("secrets").select();
    expect([anon.status, anon.error]).toEqual([
      401,
      { code: "42501", message: "permission denied for table secrets", details: null, hint: null },
    ]);
    const user = await h
      .asUser(await h.stack.mintUserToken(ALICE))
      .from("secrets")
      .select();
    expect([user.status, user.error?.code]).toEqual([403, "42501"]);
    expect((await h.service.from("secrets").select("secret")).data).toEqual([{ secret: "the combination" }]);
  });
});

describe("tokens", () => {
  const bearer = (token: string) =>
    h.rest("/todos?select=title", { headers: { authorization: `Bearer ${token}` } });

  it("rejects an expired token with 401 PGRST303", async () => {
    const res = await bearer(await h.stack.mintUserToken(ALICE, {}, { expiresIn: -120 }));
    expect([res.status, res.json()]).toEqual([
      401,
      { code: "PGRST303", message: "JWT expired", details: null, hint: null },
    ]);
    expect(res.headers.get("www-authenticate")).toBe(
      'Bearer error="invalid_token", error_description="JWT expired"',
    );
    const skewed = await bearer(await h.stack.mintUserToken(ALICE, {}, { expiresIn: -10 }));
    expect(skewed.status).toBe(200);
  });

  it("rejects forged, malformed and unsigned tokens with 401 PGRST301", async () => {
    const forged = await new SignJWT({ sub: ALICE, role: "service_role" })
      .setProtectedHeader({ alg: "HS256" })
      .setExpirationTime("1h")
      .sign(new TextEncoder().encode("another-secret-that-is-long-enough-32"));
    const expectations: [string, string][] = [
      [forged, "JWT cryptographic operation failed"],
      ["abc.def", "Expected 3 parts in JWT; got 2"],
      [
        `${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from('{"role":"service_role"}').toString("base64url")}.`,
        "Wrong or unsupported encoding algorithm",
      ],
    ];
    for (const [token, message] of expectations) {
      const res = await bearer(token);
      expect([res.status, res.json()]).toEqual([
        401,
        { code: "PGRST301", message, details: null, hint: null },
      ]);
    }
    const empty = await h.rest("/todos", { headers: { authorization: "Bearer " } });
    expect((empty.json() as { message: string }).message).toBe("Empty JWT is sent in Authorization header");
  });

  it("answers a role that does not exist with 401", async () => {
    const res = await bearer(await h.stack.mintToken({ role: "ghost" }));
    expect([res.status, res.json()]).toEqual([
      401,
      { code: "22023", message: 'role "ghost" does not exist', details: null, hint: null },
    ]);
  });

  it("requires an apikey like Supabase's gateway, in the header or the query", async () => {
    const none = await fetch(`${h.stack.url}/rest/v1/todos`);
    expect([none.status, await none.json()]).toEqual([
      401,
      { message: "No API key found in request", hint: "No `apikey` request header or url param was found." },
    ]);
    const wrong = await h.rest("/todos", { headers: { apikey: "not-a-key" } });
    expect([wrong.status, (wrong.json() as { message: string }).message]).toEqual([401, "Invalid API key"]);
    const query = await fetch(`${h.stack.url}/rest/v1/todos?select=title&apikey=${h.stack.anonKey}`);
    expect(await query.json()).toEqual([{ title: "alice public" }]);
  });

  it("runs as the apikey's role when no Authorization is sent", async () => {
    const res = await h.rest("/todos?select=title", { headers: { apikey: h.stack.serviceRoleKey } });
    expect((res.json() as unknown[]).length).toBe(3);
    const basic = await h.rest("/todos?select=title", {
      headers: { apikey: h.stack.serviceRoleKey, authorization: "Basic dXNlcjpwdw==" },
    });
    expect(basic.json()).toEqual([{ title: "alice public" }]);
  });
});

describe("HTTP surface", () => {
  it("answers CORS preflights and exposes Content-Range", async () => {
    const preflight = await fetch(`${h.stack.url}/rest/v1/todos`, {
      method: "OPTIONS",
      headers: {
        origin: "http://app.local",
        "access-control-request-method": "GET",
        "access-control-request-headers": "apikey, prefer",
      },
    });
    expect(preflight.status).toBe(200);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("*");
    expect(preflight.headers.get("access-control-allow-headers")).toBe("Authorization, apikey, prefer");
    const get = await h.rest("/todos", { headers: { origin: "http://app.local" } });
    expect(get.headers.get("access-control-expose-headers")).toBe(
      "Content-Encoding, Content-Location, Content-Range, Content-Type, Date, Location, Server, Transfer-Encoding, Range-Unit",
    );
  });

  it("exposes only the public schema", async () => {
    const res = await h.anon.schema("auth").from("users").select();
    expect([res.status, res.error]).toEqual([
      406,
      {
        code: "PGRST106",
        message: "Invalid schema: auth",
        details: null,
        hint: "Only the following schemas are exposed: public",
      },
    ]);
    const echoed = await h.rest("/todos", { headers: { "accept-profile": "public" } });
    expect(echoed.headers.get("content-profile")).toBe("public");
  });
});
