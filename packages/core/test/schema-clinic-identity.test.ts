import { createHmac, randomBytes, randomUUID } from "node:crypto";
import { clinicSession, signClinicToken } from "@centrovision/testkit";
import type postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogin, type Login, outcome } from "./support/clinic-logins.js";
import { type ClinicRows, clinicRows, insertClinic, insertRow } from "./support/ehr-fixtures.js";
import { createTestDatabase, type TestDatabase } from "./support/test-database.js";

/*
 * sql/0003_roles.sql on the clinic server: PostgreSQL verifies the person itself. A PC login
 * holds nothing; a clinic session is honoured only when this server's key signed it, for this
 * audience and role, not expired nor dated too far ahead, for a user not disabled and a session
 * not signed out — anything else is refused with CV010, never read as "nobody".
 */

let clinic: TestDatabase;
let other: TestDatabase;
let pc: Login;
let daemon: Login;
let rows: ClinicRows;
let key: { key_id: string; key: Buffer };

beforeAll(async () => {
  [clinic, other] = await Promise.all([
    createTestDatabase("cv_identity"),
    createTestDatabase("cv_identity_other"),
  ]);
  rows = clinicRows();
  await insertClinic(clinic.sql, rows);
  [pc, daemon] = await Promise.all([
    createLogin(clinic, "centrovision_app"),
    createLogin(clinic, "centrovision_sync"),
  ]);
  [key] = (await clinic.sql`select key_id::text, key from cv_auth.signing_key`) as unknown as [typeof key];
});
afterAll(async () => {
  await Promise.all([pc?.drop(), daemon?.drop()]);
  await Promise.all([clinic?.drop(), other?.drop()]);
});

const doctor = () => rows.profiles.id;
const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);
/** The claims clinicSession() would sign for the doctor, with `change` applied. */
const claims = (change: Record<string, unknown> = {}) => ({
  sub: doctor(),
  email: rows.profiles.email,
  role: "authenticated",
  aud: "centrovision-clinic",
  sign_in: "online",
  sid: randomUUID(),
  iat: now(),
  exp: now() + 3600,
  ...change,
});
/** How many patients a PC login, acting with `token`, sees (or the SQLSTATE of the refusal). */
const patientsSeenWith = (token: string) =>
  outcome(async () => {
    const [row] = await pc.connect({ as: "person", token })<
      { n: number }[]
    >`select count(*)::int as n from patients`;
    return row?.n;
  });

describe("a PC login", () => {
  it("alone reads no patient and writes no role; as `authenticated` without a session it sees none", async () => {
    const alone = pc.connect({ as: "login" });
    expect(await outcome(() => alone`select count(*) from patients`)).toEqual({ code: "42501" });
    const grant = (sql: postgres.Sql) => () =>
      insertRow(sql, "user_roles", { id: randomUUID(), user_id: doctor(), role: "admin" });
    expect(await outcome(grant(alone))).toEqual({ code: "42501" });

    const nobody = pc.connect({ as: "nobody" });
    expect(await nobody`select (select count(*)::int from patients) as n, auth.uid() as uid`).toEqual([
      { n: 0, uid: null },
    ]);
    expect(await outcome(grant(nobody))).toEqual({ code: "42501" });
    // An empty session is no session.
    expect(await patientsSeenWith("")).toEqual({ ok: 0 });
  });

  it("with a verified session sees the person's branch, and still may not write roles (the policies refuse)", async () => {
    const token = await clinicSession(clinic.url, { userId: doctor() });
    expect(await patientsSeenWith(token)).toEqual({ ok: 1 });
    const person = pc.connect({ as: "person", token });
    expect(
      await outcome(() =>
        insertRow(person, "user_roles", { id: randomUUID(), user_id: doctor(), role: "admin" }),
      ),
    ).toEqual({ code: "42501" });
  });

  it.each([
    ["the signing key", (sql: postgres.Sql) => sql`select * from cv_auth.signing_key`],
    ["the verifiers", (sql: postgres.Sql) => sql`select * from cv_auth.verifiers`],
    ["the sign-in settings", (sql: postgres.Sql) => sql`update cv_auth.settings set lockout_attempts = 20`],
    ["the disabled users", (sql: postgres.Sql) => sql`delete from cv_auth.disabled_users`],
    ["the signed-out sessions", (sql: postgres.Sql) => sql`delete from cv_auth.ended_sessions`],
    ["the key's export", (sql: postgres.Sql) => sql`select public.cv_clinic_key_export()`],
    [
      "the disabled users' copy",
      (sql: postgres.Sql) => sql`select public.cv_clinic_set_disabled_users('[]')`,
    ],
    ["the signer", (sql: postgres.Sql) => sql`select cv_auth.sign('{}', ${randomUUID()}, '\\x00', '\\x00')`],
    ["the pads", (sql: postgres.Sql) => sql`select * from cv_auth.hmac_pads(${randomBytes(32)})`],
  ])("cannot reach %s, alone or as its person (42501)", async (_what, statement) => {
    const token = await clinicSession(clinic.url, { userId: doctor() });
    for (const client of [pc.connect({ as: "login" }), pc.connect({ as: "person", token })]) {
      expect(await outcome(() => statement(client))).toEqual({ code: "42501" });
    }
  });

  it("leaves the key's export to the sync daemon's login, which registers it with the cloud", async () => {
    const [exported] = await daemon.connect()<{ key: { key_id: string; key: string } }[]>`
      select public.cv_clinic_key_export() as key`;
    expect(exported?.key).toEqual({ key_id: key.key_id, key: key.key.toString("hex") });
  });
});

describe("a clinic session", () => {
  const cases: [string, () => Promise<string>][] = [
    ["signed with another key", async () => signClinicToken(randomBytes(32), key.key_id, claims())],
    ["of another clinic server (its own key)", () => clinicSession(other.url, { userId: doctor() })],
    [
      "whose payload was changed after signing",
      async () => {
        const [header, , signature] = (await clinicSession(clinic.url, { userId: randomUUID() })).split(".");
        return `${header}.${b64url(claims())}.${signature}`;
      },
    ],
    [
      "with alg none",
      async () => `${b64url({ alg: "none", typ: "JWT", kid: key.key_id })}.${b64url(claims())}.`,
    ],
    ["naming another key id", async () => signClinicToken(key.key, randomUUID(), claims())],
    ["expired", () => clinicSession(clinic.url, { userId: doctor(), expiresInSeconds: -60 })],
    ["expiring in 9999", async () => signClinicToken(key.key, key.key_id, claims({ exp: 253_402_300_799 }))],
    [
      "expiring two days ahead",
      () => clinicSession(clinic.url, { userId: doctor(), expiresInSeconds: 2 * 86_400 }),
    ],
    [
      "with exp as text",
      async () => signClinicToken(key.key, key.key_id, claims({ exp: String(now() + 3600) })),
    ],
    ["without sub", async () => signClinicToken(key.key, key.key_id, claims({ sub: undefined }))],
    [
      "with a sub that is no uuid",
      async () => signClinicToken(key.key, key.key_id, claims({ sub: "admin" })),
    ],
    ["without sid", async () => signClinicToken(key.key, key.key_id, claims({ sid: undefined }))],
    ["signed in another way", async () => signClinicToken(key.key, key.key_id, claims({ sign_in: "cloud" }))],
    [
      "for Supabase's audience",
      async () => signClinicToken(key.key, key.key_id, claims({ aud: "authenticated" })),
    ],
    ["for another role", async () => signClinicToken(key.key, key.key_id, claims({ role: "service_role" }))],
    ["that is no JWT", async () => "no-es-un-token"],
    ["with a fourth part", async () => `${await clinicSession(clinic.url, { userId: doctor() })}.e30`],
    [
      "with a truncated signature",
      async () => (await clinicSession(clinic.url, { userId: doctor() })).slice(0, -1),
    ],
  ];
  it.each(cases)("is refused when %s (CV010)", async (_what, token) => {
    expect(await patientsSeenWith(await token())).toEqual({ code: "CV010" });
  });

  it("stops working at once when the cloud disables its user, and works again when it is lifted", async () => {
    const token = await clinicSession(clinic.url, { userId: doctor() });
    const person = pc.connect({ as: "person", token });
    const sync = daemon.connect();
    expect(await person`select count(*)::int as n from patients`).toEqual([{ n: 1 }]);
    expect(
      await sync`select public.cv_clinic_set_disabled_users(${JSON.stringify([doctor(), randomUUID()])}::text::jsonb) as n`,
    ).toEqual([{ n: 2 }]);
    await expect(person`select count(*) from patients`).rejects.toMatchObject({
      code: "CV010",
      message: "this user is disabled",
    });
    await sync`select public.cv_clinic_set_disabled_users('[]')`;
    expect(await person`select count(*)::int as n from patients`).toEqual([{ n: 1 }]);
  });

  it("ends when signed out here, while the person's other sessions go on", async () => {
    const [token, another] = await Promise.all([
      clinicSession(clinic.url, { userId: doctor() }),
      clinicSession(clinic.url, { userId: doctor() }),
    ]);
    const person = pc.connect({ as: "person", token });
    await person`select cv_auth.sign_out()`;
    await expect(person`select count(*) from patients`).rejects.toMatchObject({
      code: "CV010",
      message: "the clinic session was signed out",
    });
    expect(await patientsSeenWith(token)).toEqual({ code: "CV010" });
    expect(await patientsSeenWith(another)).toEqual({ ok: 1 });
  });
});

describe("a verified session, remembered", () => {
  const remembered = async () =>
    (await clinic.sql<{ n: number }[]>`select count(*)::int as n from cv_auth.verified_sessions`)[0]?.n ?? 0;

  it("is verified once: later statements find it by its hash, and a PC can neither read nor write that list", async () => {
    const before = await remembered();
    const token = await clinicSession(clinic.url, { userId: doctor() });
    const person = pc.connect({ as: "person", token });
    expect(await person`select count(*)::int as n from patients`).toEqual([{ n: 1 }]);
    expect(await remembered()).toBe(before + 1);
    expect(await person`select count(*)::int as n from patients`).toEqual([{ n: 1 }]);
    expect(await remembered()).toBe(before + 1);
    const [row] = await clinic.sql<{ claims: { sub: string } }[]>`
      select claims from cv_auth.verified_sessions where token_hash = sha256(convert_to(${token}, 'UTF8'))`;
    expect(row?.claims.sub).toBe(doctor());
    for (const as of ["login", "person"] as const) {
      const sql = pc.connect({ as, token });
      expect(await outcome(() => sql`select count(*) from cv_auth.verified_sessions`)).toEqual({
        code: "42501",
      });
      expect(
        await outcome(
          () =>
            sql`insert into cv_auth.verified_sessions (token_hash, key_id, access_generation, claims, branch_ids, expires_at)
              values (sha256('x'), gen_random_uuid(), 1, '{}', '{}', now() + interval '1 hour')`,
        ),
      ).toEqual({ code: "42501" });
      expect(await outcome(() => sql`select cv_auth.verify(${token})`)).toEqual({ code: "42501" });
    }
  });

  it("follows the person's branches: one taken away is gone at the next statement, one given back is seen", async () => {
    const person = pc.connect({ as: "person", token: await clinicSession(clinic.url, { userId: doctor() }) });
    const seen = async () => (await person<{ n: number }[]>`select count(*)::int as n from patients`)[0]?.n;
    expect(await seen()).toBe(1);
    await clinic.sql`delete from user_branches where id = ${rows.user_branches.id}`;
    try {
      expect(await seen()).toBe(0);
    } finally {
      await insertRow(clinic.sql, "user_branches", rows.user_branches);
    }
    expect(await seen()).toBe(1);
  });

  // A session verified while a change is still uncommitted was checked against the old access;
  // the change moves the access generation on as it commits, so that verification is not used again.
  it.each([
    [
      "the cloud disables the user",
      (tx: postgres.TransactionSql) => tx`insert into cv_auth.disabled_users (user_id) values (${doctor()})`,
      { code: "CV010" },
      () => clinic.sql`delete from cv_auth.disabled_users where user_id = ${doctor()}`,
    ],
    [
      "the user leaves the branch",
      (tx: postgres.TransactionSql) => tx`delete from user_branches where id = ${rows.user_branches.id}`,
      { ok: 0 },
      () => insertRow(clinic.sql, "user_branches", rows.user_branches),
    ],
  ])("is verified again when %s while it is being verified", async (_what, change, after, undo) => {
    const person = pc.connect({ as: "person", token: await clinicSession(clinic.url, { userId: doctor() }) });
    const seen = () =>
      outcome(async () => (await person<{ n: number }[]>`select count(*)::int as n from patients`)[0]?.n);
    try {
      await clinic.sql.begin(async (tx) => {
        await change(tx);
        expect(await seen()).toEqual({ ok: 1 });
      });
      expect(await seen()).toEqual(after);
    } finally {
      await undo();
    }
    expect(await seen()).toEqual({ ok: 1 });
  });

  it("still expires on time, and is forgotten when the server's key changes", async () => {
    const token = await clinicSession(clinic.url, { userId: doctor(), expiresInSeconds: 2 });
    expect(await patientsSeenWith(token)).toEqual({ ok: 1 });
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    expect(await patientsSeenWith(token)).toEqual({ code: "CV010" });

    const lasting = await clinicSession(clinic.url, { userId: doctor() });
    expect(await patientsSeenWith(lasting)).toEqual({ ok: 1 });
    const [old] = await clinic.sql<{ key_id: string }[]>`select key_id::text from cv_auth.signing_key`;
    await clinic.sql`update cv_auth.signing_key set key_id = gen_random_uuid()`;
    try {
      expect(await patientsSeenWith(lasting)).toEqual({ code: "CV010" });
    } finally {
      await clinic.sql`update cv_auth.signing_key set key_id = ${old?.key_id ?? ""}`;
    }
  });
});

describe("HMAC-SHA-256 in SQL", () => {
  it("signs as Node does, and each side verifies the other's tokens", async () => {
    const mine = claims({ email: "lucía.hernández@example.mx" });
    const [signed] = await clinic.sql<{ token: string }[]>`
      select cv_auth.sign(${JSON.stringify(mine)}::text::jsonb, k.key_id, k.inner_pad, k.outer_pad) as token
      from cv_auth.signing_key k`;
    const [header, payload, signature] = (signed?.token ?? "").split(".");
    expect(signature).toBe(createHmac("sha256", key.key).update(`${header}.${payload}`).digest("base64url"));
    expect(JSON.parse(Buffer.from(header ?? "", "base64url").toString())).toEqual({
      alg: "HS256",
      typ: "JWT",
      kid: key.key_id,
    });
    expect(JSON.parse(Buffer.from(payload ?? "", "base64url").toString())).toEqual(mine);
    expect(
      await pc.connect({ as: "person", token: signed?.token ?? "" })`select auth.uid()::text as uid`,
    ).toEqual([{ uid: doctor() }]);

    const fromNode = claims({ email: "josé.núñez@example.mx" });
    const [verified] = await pc.connect({
      as: "person",
      token: signClinicToken(key.key, key.key_id, fromNode),
    })`
      select auth.jwt() as claims`;
    expect(verified?.claims).toEqual(fromNode);
  });

  it.each([32, 48, 64])("computes it from the stored pads for a %i-byte key", async (length) => {
    const secret = randomBytes(length);
    const message = `${randomUUID()} · Núñez ${randomBytes(40).toString("base64")}`;
    const [row] = await clinic.sql<{ mac: Buffer }[]>`
      select sha256(p.outer_pad || sha256(p.inner_pad || convert_to(${message}, 'UTF8'))) as mac
      from cv_auth.hmac_pads(${secret}) p`;
    expect(row?.mac.toString("hex")).toBe(createHmac("sha256", secret).update(message).digest("hex"));
  });

  it.each([31, 65])("refuses a %i-byte key (CV005)", async (length) => {
    await expect(clinic.sql`select * from cv_auth.hmac_pads(${randomBytes(length)})`).rejects.toMatchObject({
      code: "CV005",
    });
  });
});
