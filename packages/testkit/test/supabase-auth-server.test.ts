import { randomUUID } from "node:crypto";
import { AuthApiError, createClient, isAuthApiError, isAuthSessionMissingError } from "@supabase/supabase-js";
import { decodeJwt, decodeProtectedHeader, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { authTools, PASSWORD } from "./fixtures/supabase/auth-tools.js";
import { type Harness, startHarness, supabaseClient } from "./fixtures/supabase/harness.js";

/* Supabase Auth as supabase-js sees it, over HTTP: sign-in, the user, sign-out, admin, keys. */

let h: Harness;
const logLines: string[] = [];

beforeAll(async () => {
  h = await startHarness({ log: (line) => logLines.push(line) });
});
afterAll(() => h?.stop());

const { appClient, newUser, signedIn, auth, refresh } = authTools(() => h);

describe("password sign-in", () => {
  it("returns a session whose ES256 access token getClaims() verifies locally with the JWKS", async () => {
    const { id, email } = await newUser({ userMetadata: { name: "Dra. Nuñez" } });
    const requests: string[] = [];
    const client = appClient(requests);
    const before = Math.floor(Date.now() / 1000);
    const { data, error } = await client.auth.signInWithPassword({
      email: email.toUpperCase(),
      password: PASSWORD,
    });
    expect(error).toBeNull();
    const session = data.session;
    if (!session) throw new Error("no session");
    expect(session).toMatchObject({ token_type: "bearer", expires_in: 3600 });
    expect(session.expires_at).toBeGreaterThanOrEqual(before + 3600);
    expect(session.refresh_token).toMatch(/^[a-z2-7]{12}$/);
    expect(session.user).toMatchObject({
      id,
      aud: "authenticated",
      role: "authenticated",
      email,
      phone: "",
      app_metadata: { provider: "email", providers: ["email"] },
      user_metadata: { name: "Dra. Nuñez", email_verified: true },
      identities: [],
      is_anonymous: false,
    });
    expect(session.user.last_sign_in_at).toBeDefined();

    expect(decodeProtectedHeader(session.access_token)).toEqual({
      alg: "ES256",
      kid: h.stack.jwks.keys[0]?.kid,
      typ: "JWT",
    });
    const claims = decodeJwt(session.access_token);
    expect(claims).toMatchObject({
      iss: `${h.stack.url}/auth/v1`,
      sub: id,
      aud: "authenticated",
      role: "authenticated",
      aal: "aal1",
      email,
      phone: "",
      is_anonymous: false,
      app_metadata: { provider: "email", providers: ["email"] },
      user_metadata: { name: "Dra. Nuñez", email_verified: true },
      amr: [{ method: "password", timestamp: expect.any(Number) }],
    });
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(3600);
    const [row] = await h.sql`select user_id from auth.sessions where id = ${claims.session_id as string}`;
    expect(row).toEqual({ user_id: id });
    const [user] = await h.sql<{ encrypted_password: string; signed_in: boolean }[]>`
      select encrypted_password, last_sign_in_at is not null as signed_in from auth.users where id = ${id}`;
    expect(user?.encrypted_password).toMatch(/^\$2a\$10\$/);
    expect(user?.signed_in).toBe(true);

    requests.length = 0;
    const verified = await client.auth.getClaims();
    expect(verified.error).toBeNull();
    expect(verified.data?.claims.sub).toBe(id);
    expect(requests).toEqual(["/auth/v1/.well-known/jwks.json"]);
  });

  it("refuses a wrong password or an unknown email with GoTrue's invalid_credentials", async () => {
    const { email } = await newUser();
    for (const attempt of [
      { email, password: "wrong password" },
      { email: `nobody-${randomUUID()}@clinic.example`, password: PASSWORD },
    ]) {
      const { data, error } = await appClient().auth.signInWithPassword(attempt);
      expect(data.session).toBeNull();
      expect(error).toBeInstanceOf(AuthApiError);
      expect([error?.status, error?.code, error?.message]).toEqual([
        400,
        "invalid_credentials",
        "Invalid login credentials",
      ]);
    }
    const body = JSON.stringify({ email, password: "wrong password" });
    const versioned = await auth("/token?grant_type=password", { method: "POST", body });
    expect([versioned.status, versioned.body]).toEqual([
      400,
      { code: "invalid_credentials", message: "Invalid login credentials" },
    ]);
    expect(versioned.headers.get("x-supabase-api-version")).toBe("2024-01-01");
    const legacy = await auth("/token?grant_type=password", {
      method: "POST",
      body,
      headers: { "x-supabase-api-version": "" },
    });
    expect(legacy.body).toEqual({
      code: 400,
      error_code: "invalid_credentials",
      msg: "Invalid login credentials",
    });
  });

  it("refuses a banned user with user_banned, and lets them in once the ban is lifted", async () => {
    const { id, email } = await newUser({ banned: true });
    const banned = await appClient().auth.signInWithPassword({ email, password: PASSWORD });
    expect([banned.error?.status, banned.error?.code]).toEqual([400, "user_banned"]);
    const lifted = await h.service.auth.admin.updateUserById(id, { ban_duration: "none" });
    expect(lifted.error).toBeNull();
    const ok = await appClient().auth.signInWithPassword({ email, password: PASSWORD });
    expect(ok.error).toBeNull();
  });
});

describe("the user and its session", () => {
  it("getUser() answers the user; a banned user's live token is refused", async () => {
    const { id, client } = await signedIn();
    const { data, error } = await client.auth.getUser();
    expect(error).toBeNull();
    expect(data.user).toMatchObject({ id, aud: "authenticated", identities: [] });
    await h.service.auth.admin.updateUserById(id, { ban_duration: "876000h" });
    const banned = await client.auth.getUser();
    expect([banned.error?.status, banned.error?.code]).toEqual([403, "user_banned"]);
  });

  it("answers bad and expired tokens with 403 bad_jwt, a missing one with 401 no_authorization", async () => {
    const { id } = await newUser();
    const expired = await h.stack.mintUserToken(id, {}, { expiresIn: -60 });
    const { error } = await appClient().auth.getUser(expired);
    expect(isAuthApiError(error)).toBe(true);
    expect([error?.status, error?.code, error?.message]).toEqual([
      403,
      "bad_jwt",
      "invalid JWT: unable to parse or verify signature, token has invalid claims: token is expired",
    ]);
    const garbage = await appClient().auth.getUser("not.a.jwt");
    expect([garbage.error?.status, garbage.error?.code]).toEqual([403, "bad_jwt"]);
    const none = await auth("/user");
    expect([none.status, none.body]).toEqual([
      401,
      { code: "no_authorization", message: "This endpoint requires a valid Bearer token" },
    ]);
  });
});

describe("sign-out", () => {
  it("local: the session's refresh token is gone and its access token no longer reaches /user", async () => {
    const { client, session } = await signedIn();
    const other = await refresh(session.refresh_token);
    expect((await client.auth.signOut({ scope: "local" })).error).toBeNull();
    expect((await client.auth.getSession()).data.session).toBeNull();
    const after = await appClient().auth.refreshSession({
      refresh_token: other.body.refresh_token as string,
    });
    expect([after.error?.status, after.error?.code]).toEqual([400, "refresh_token_not_found"]);
    const user = await appClient().auth.getUser(session.access_token);
    expect(isAuthSessionMissingError(user.error)).toBe(true);
    // PostgREST does not look at sessions: the access token still works there until it expires.
    const rest = await h.asUser(session.access_token).rpc("whoami");
    expect(rest.error).toBeNull();
  });

  it("global ends every session of the user; others ends all but the caller's", async () => {
    const { email, client } = await signedIn();
    const second = appClient();
    const third = appClient();
    for (const other of [second, third]) {
      expect((await other.auth.signInWithPassword({ email, password: PASSWORD })).error).toBeNull();
    }
    expect((await second.auth.signOut({ scope: "others" })).error).toBeNull();
    expect((await client.auth.refreshSession()).error?.code).toBe("refresh_token_not_found");
    expect((await second.auth.refreshSession()).error).toBeNull();
    expect((await third.auth.signInWithPassword({ email, password: PASSWORD })).error).toBeNull();
    expect((await third.auth.signOut()).error).toBeNull();
    expect((await second.auth.refreshSession()).error?.code).toBe("refresh_token_not_found");
  });
});

describe("the REST API with Auth's tokens", () => {
  const rpc = (token: string) =>
    h.rest("/rpc/whoami", { method: "POST", body: "{}", headers: { authorization: `Bearer ${token}` } });

  it("accepts the ES256 access token: auth.uid() and the claims reach row-level security", async () => {
    const { id, client, session } = await signedIn();
    expect((await client.rpc("whoami")).data).toBe(id);
    const claims = (await client.rpc("my_claims")).data as Record<string, unknown>;
    expect(claims).toMatchObject({ sub: id, role: "authenticated", session_id: expect.any(String) });
    const inserted = await client.from("todos").insert({ title: "mine" }).select("owner").single();
    expect(inserted.data).toEqual({ owner: id });
    expect((await rpc(session.access_token)).status).toBe(200);
  });

  it("refuses other keys, other algorithms and expired tokens with 401", async () => {
    const { id } = await newUser();
    const kid = h.stack.jwks.keys[0]?.kid ?? "";
    const claims = { sub: id, role: "authenticated", aud: "authenticated" };
    const foreign = await generateKeyPair("ES256");
    const rsa = await generateKeyPair("RS256");
    const sign = (key: Parameters<SignJWT["sign"]>[0], header: { alg: string; kid?: string }) =>
      new SignJWT(claims).setProtectedHeader(header).setIssuedAt().setExpirationTime("1h").sign(key);
    const cases: [string, string][] = [
      [
        await sign(foreign.privateKey, { alg: "ES256", kid: randomUUID() }),
        "No suitable key or wrong key type",
      ],
      [await sign(foreign.privateKey, { alg: "ES256", kid }), "JWT cryptographic operation failed"],
      [await sign(rsa.privateKey, { alg: "RS256", kid }), "No suitable key or wrong key type"],
      [
        await sign(new TextEncoder().encode(h.stack.jwtSecret), { alg: "HS256", kid }),
        "No suitable key or wrong key type",
      ],
      [await h.stack.mintUserToken(id, {}, { expiresIn: -120 }), "JWT expired"],
    ];
    for (const [token, message] of cases) {
      const answer = await rpc(token);
      expect([answer.status, (answer.json() as { message: string }).message]).toEqual([401, message]);
    }
    expect((await rpc(await h.stack.mintUserToken(id))).status).toBe(200);
  });
});

describe("admin users API", () => {
  it("creates, updates and deletes users with the service role", async () => {
    const email = `admin-made-${randomUUID()}@clinic.example`;
    const created = await h.service.auth.admin.createUser({
      email,
      password: PASSWORD,
      email_confirm: true,
      user_metadata: { clinic: "Roma" },
    });
    expect(created.error).toBeNull();
    const id = created.data.user?.id ?? "";
    expect(created.data.user).toMatchObject({
      email,
      user_metadata: { clinic: "Roma", email_verified: true },
      app_metadata: { provider: "email", providers: ["email"] },
    });
    const duplicate = await h.service.auth.admin.createUser({ email, password: PASSWORD });
    expect([duplicate.error?.status, duplicate.error?.code]).toEqual([422, "email_exists"]);

    const client = appClient();
    expect((await client.auth.signInWithPassword({ email, password: PASSWORD })).error).toBeNull();
    const updated = await h.service.auth.admin.updateUserById(id, {
      password: "a brand new password",
      user_metadata: { clinic: null, room: 3 },
    });
    expect(updated.data.user?.user_metadata).toEqual({ email_verified: true, room: 3 });
    // A new password signs the user out everywhere.
    expect((await client.auth.refreshSession()).error?.code).toBe("refresh_token_not_found");
    const weak = await h.service.auth.admin.updateUserById(id, { password: "123" });
    expect([weak.error?.status, weak.error?.code]).toEqual([422, "weak_password"]);

    expect((await h.service.auth.admin.deleteUser(id)).error).toBeNull();
    const gone = await appClient().auth.signInWithPassword({ email, password: "a brand new password" });
    expect(gone.error?.code).toBe("invalid_credentials");
    const missing = await h.service.auth.admin.getUserById(id);
    expect([missing.error?.status, missing.error?.code]).toEqual([404, "user_not_found"]);
  });

  it("keeps an unconfirmed user out, and a soft-deleted one too", async () => {
    const email = `unconfirmed-${randomUUID()}@clinic.example`;
    const created = await h.service.auth.admin.createUser({ email, password: PASSWORD });
    expect(created.data.user?.email_confirmed_at).toBeUndefined();
    const unconfirmed = await appClient().auth.signInWithPassword({ email, password: PASSWORD });
    expect([unconfirmed.error?.status, unconfirmed.error?.code]).toEqual([400, "email_not_confirmed"]);

    const { id, email: confirmed } = await newUser();
    expect((await h.service.auth.admin.deleteUser(id, true)).error).toBeNull();
    const deleted = await appClient().auth.signInWithPassword({ email: confirmed, password: PASSWORD });
    expect(deleted.error?.code).toBe("invalid_credentials");
    const kept = await h.service.auth.admin.getUserById(id);
    expect(kept.data.user?.deleted_at).toBeDefined();
    expect(kept.data.user?.email).not.toBe(confirmed);
  });

  it("refuses the anon key and a user's token with 403 not_admin", async () => {
    const { session } = await signedIn();
    const asUser = createClient(h.stack.url, h.stack.anonKey, {
      realtime: { transport: WebSocket as never },
      auth: { persistSession: false, autoRefreshToken: false },
      global: { headers: { Authorization: `Bearer ${session.access_token}` } },
    });
    for (const client of [h.anon, asUser]) {
      const { error } = await client.auth.admin.createUser({ email: `x-${randomUUID()}@clinic.example` });
      expect([error?.status, error?.code, error?.message]).toEqual([403, "not_admin", "User not allowed"]);
    }
  });
});

describe("the HTTP surface", () => {
  it("publishes the public signing key, and nothing else, at the JWKS endpoint without an apikey", async () => {
    const response = await fetch(`${h.stack.url}/auth/v1/.well-known/jwks.json`);
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("public, max-age=600");
    const jwks = (await response.json()) as { keys: Record<string, unknown>[] };
    expect(jwks).toEqual(h.stack.jwks);
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({
      kty: "EC",
      crv: "P-256",
      alg: "ES256",
      use: "sig",
      key_ops: ["verify"],
    });
    expect(jwks.keys[0]).not.toHaveProperty("d");
  });

  it("requires an apikey like the REST API, answers CORS, and 404s what Auth does not route", async () => {
    const none = await fetch(`${h.stack.url}/auth/v1/user`);
    expect([none.status, await none.json()]).toEqual([
      401,
      { message: "No API key found in request", hint: "No `apikey` request header or url param was found." },
    ]);
    const wrong = await auth("/user", { headers: { apikey: "not-a-key" } });
    expect([wrong.status, wrong.body.message]).toEqual([401, "Invalid API key"]);
    const unknown = await fetch(`${h.stack.url}/auth/v1/nowhere`, { headers: { apikey: h.stack.anonKey } });
    expect([unknown.status, await unknown.text()]).toEqual([404, "404 page not found\n"]);
    const cors = await auth("/user", { headers: { origin: "http://app.local" } });
    expect(cors.headers.get("access-control-allow-origin")).toBe("*");
    expect(cors.headers.get("access-control-expose-headers")).toContain("X-Supabase-Api-Version");
    const preflight = await fetch(`${h.stack.url}/auth/v1/token`, {
      method: "OPTIONS",
      headers: { origin: "http://app.local", "access-control-request-method": "POST" },
    });
    expect(preflight.status).toBe(200);
  });

  it("serves supabase-js clients that use the harness's plain options too", async () => {
    const { email } = await newUser();
    const client = supabaseClient(h.stack.url, h.stack.anonKey);
    const { data, error } = await client.auth.signInWithPassword({ email, password: PASSWORD });
    expect(error).toBeNull();
    expect((await client.rpc("whoami")).data).toBe(data.user?.id);
  });
});

describe("logging", () => {
  it("never logged an email, a password or a token during this file's requests", () => {
    const text = logLines.join("\n");
    expect(text).not.toContain("@clinic.example");
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toMatch(/eyJ/);
  });
});
