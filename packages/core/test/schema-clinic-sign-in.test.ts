import { randomUUID } from "node:crypto";
import { clinicSession } from "@centrovision/testkit";
import type postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogin, type Login, outcome } from "./support/clinic-logins.js";
import { type ClinicRows, clinicRows, insertClinic } from "./support/ehr-fixtures.js";
import { createTestDatabase, rolledBack, type TestDatabase } from "./support/test-database.js";

/*
 * sql/0011_identity.sql: signing in at the clinic server. Offline, against a verifier an online
 * sign-in left there (with lockout, window and disabled users); online, with a clinic session the
 * cloud mints for a person of a Supabase session, signed with the key the clinic registered.
 */

const PASSWORD = "Ojo-Sano-2025";
let clinic: TestDatabase;
let cloud: TestDatabase;
let pc: Login;
let daemon: Login;
let rows: ClinicRows;

beforeAll(async () => {
  [clinic, cloud] = await Promise.all([
    createTestDatabase("cv_sign_in"),
    createTestDatabase("cv_sign_in_cloud", { supabase: true }),
  ]);
  rows = clinicRows();
  await insertClinic(clinic.sql, rows);
  [pc, daemon] = await Promise.all([
    createLogin(clinic, "centrovision_app"),
    createLogin(clinic, "centrovision_sync"),
  ]);
});
afterAll(async () => {
  await Promise.all([pc?.drop(), daemon?.drop()]);
  await Promise.all([clinic?.drop(), cloud?.drop()]);
});

interface Answer {
  ok: boolean;
  reason?: "wrong" | "locked" | "expired" | "disabled";
  retry_after_s?: number;
  token?: string;
  expires_at?: string;
  user?: { id: string; email: string };
}

/** What the clinic answers a PC login (alone, as before anyone signed in) to an offline sign-in. */
async function signIn(email: string, password: string, client: postgres.Sql = pc.connect()): Promise<Answer> {
  const [row] = await client<{ answer: Answer }[]>`select cv_auth.sign_in(${email}, ${password}) as answer`;
  return row?.answer as Answer;
}

/** A person of the clinic's branch who signed in online on a PC, which left a verifier here. */
async function enrolled(password = PASSWORD): Promise<{ id: string; email: string }> {
  const id = randomUUID();
  const email = `medico.${id.slice(0, 8)}@example.mx`;
  const token = await clinicSession(clinic.url, { userId: id, email });
  await pc.connect({ as: "person", token })`select cv_auth.enroll(${password})`;
  return { id, email };
}

const attemptsSequence = (userId: string) => `cv_auth.sign_in_attempts_${userId.replaceAll("-", "")}`;

describe("leaving an offline sign-in (cv_auth.enroll)", () => {
  it("needs a session signed in online, with an email, for its own person", async () => {
    const enroll = (sql: postgres.Sql) => outcome(() => sql`select cv_auth.enroll(${PASSWORD})`);
    const userId = rows.profiles.id;
    const email = "lucia@example.mx";
    expect(await enroll(pc.connect({ as: "login" }))).toEqual({ code: "42501" });
    expect(await enroll(pc.connect({ as: "nobody" }))).toEqual({ code: "CV010" });
    const atTheClinic = await clinicSession(clinic.url, { userId, email, signIn: "clinic" });
    expect(await enroll(pc.connect({ as: "person", token: atTheClinic }))).toEqual({ code: "CV010" });
    const noEmail = await clinicSession(clinic.url, { userId });
    expect(await enroll(pc.connect({ as: "person", token: noEmail }))).toEqual({ code: "CV010" });
    const online = pc.connect({ as: "person", token: await clinicSession(clinic.url, { userId, email }) });
    expect(await outcome(() => online`select cv_auth.enroll('')`)).toEqual({ code: "CV005" });
    expect(await enroll(online)).toEqual({ ok: expect.anything() });
    const [verifier] =
      await clinic.sql`select email, verifier from cv_auth.verifiers where user_id = ${userId}`;
    expect(verifier?.email).toBe(email);
    expect(verifier?.verifier).toMatch(/^\$2a\$10\$/);
    expect(verifier?.verifier).not.toContain(PASSWORD);
  });
});

describe("signing in offline (cv_auth.sign_in)", () => {
  it("gives the right password a clinic session that works, marked as signed in at the clinic", async () => {
    const person = await enrolled();
    const answer = await signIn(`  ${person.email.toUpperCase()} `, PASSWORD);
    expect(answer).toMatchObject({ ok: true, user: person });
    const hours = (Date.parse(answer.expires_at ?? "") - Date.now()) / 3_600_000;
    expect(hours).toBeGreaterThan(11.9);
    expect(hours).toBeLessThanOrEqual(12);
    const [claims] = await pc.connect({ as: "person", token: answer.token ?? "" })`
      select auth.uid()::text as uid, auth.jwt() ->> 'sign_in' as sign_in`;
    expect(claims).toEqual({ uid: person.id, sign_in: "clinic" });
  });

  it("says 'wrong' alike for a wrong password and an unknown email", async () => {
    const person = await enrolled();
    expect(await signIn(person.email, "otra-cosa")).toEqual({ ok: false, reason: "wrong" });
    expect(await signIn(`nadie.${randomUUID()}@example.mx`, PASSWORD)).toEqual({
      ok: false,
      reason: "wrong",
    });
  });

  it("locks the account after five failures, even for the right password, on every connection", async () => {
    const person = await enrolled();
    for (let attempt = 0; attempt < 5; attempt++) {
      expect(await signIn(person.email, `intento-${attempt}`)).toEqual({ ok: false, reason: "wrong" });
    }
    const locked = await signIn(person.email, PASSWORD);
    expect(locked).toMatchObject({ ok: false, reason: "locked" });
    expect(locked.retry_after_s).toBeGreaterThan(14 * 60);
    expect(locked.retry_after_s).toBeLessThanOrEqual(15 * 60);
    const elsewhere = createLogin(clinic, "centrovision_app");
    const other = await elsewhere;
    try {
      expect(await signIn(person.email, PASSWORD, other.connect())).toMatchObject({ reason: "locked" });
    } finally {
      await other.drop();
    }
  });

  it("counts the attempts a caller rolls back, or turns into an error to learn the answer", async () => {
    const person = await enrolled();
    const client = pc.connect();
    for (let attempt = 0; attempt < 3; attempt++) {
      await rolledBack(client, (tx) => tx`select cv_auth.sign_in(${person.email}, ${`intento-${attempt}`})`);
    }
    for (let attempt = 3; attempt < 5; attempt++) {
      // Divides by zero on a wrong answer: the statement fails, and its transaction with it.
      const oracle = client`
        select 1 / ((cv_auth.sign_in(${person.email}, ${`intento-${attempt}`}) ->> 'ok')::boolean)::int as right`;
      await expect(oracle).rejects.toMatchObject({ code: "22012" });
    }
    expect(await signIn(person.email, PASSWORD)).toMatchObject({ ok: false, reason: "locked" });
  });

  it("locks too when the count reached the limit without the lockout's end (an attempt cut short)", async () => {
    const person = await enrolled();
    await clinic.sql`select setval(${attemptsSequence(person.id)}, 5)`;
    expect(await signIn(person.email, PASSWORD)).toMatchObject({ ok: false, reason: "locked" });
  });

  it("lets the person in again once the lockout is over, or after an online sign-in", async () => {
    const person = await enrolled();
    for (let attempt = 0; attempt < 5; attempt++) await signIn(person.email, `intento-${attempt}`);
    expect(await signIn(person.email, PASSWORD)).toMatchObject({ reason: "locked" });
    await clinic.sql`select setval(${attemptsSequence(person.id)}, extract(epoch from now())::bigint - 1)`;
    expect(await signIn(person.email, PASSWORD)).toMatchObject({ ok: true });

    for (let attempt = 0; attempt < 5; attempt++) await signIn(person.email, `intento-${attempt}`);
    expect(await signIn(person.email, PASSWORD)).toMatchObject({ reason: "locked" });
    const online = await clinicSession(clinic.url, { userId: person.id, email: person.email });
    await pc.connect({ as: "person", token: online })`select cv_auth.enroll(${PASSWORD})`;
    expect(await signIn(person.email, PASSWORD)).toMatchObject({ ok: true });
  });

  it("says 'expired' once the last online sign-in is older than offline_days, only for the right password", async () => {
    const person = await enrolled();
    await clinic.sql`update cv_auth.verifiers set enrolled_at = now() - interval '8 days' where user_id = ${person.id}`;
    expect(await signIn(person.email, PASSWORD)).toEqual({ ok: false, reason: "expired" });
    expect(await signIn(person.email, "otra-cosa")).toEqual({ ok: false, reason: "wrong" });
  });

  it("says 'disabled' for a user the cloud disabled, only for the right password", async () => {
    const person = await enrolled();
    await daemon.connect()`select public.cv_clinic_set_disabled_users(${JSON.stringify([person.id])}::text::jsonb)`;
    try {
      expect(await signIn(person.email, PASSWORD)).toEqual({ ok: false, reason: "disabled" });
      expect(await signIn(person.email, "otra-cosa")).toEqual({ ok: false, reason: "wrong" });
    } finally {
      await daemon.connect()`select public.cv_clinic_set_disabled_users('[]')`;
    }
  });

  it("keeps the verifiers and the attempt counts from a PC, alone or as its person", async () => {
    const person = await enrolled();
    const token = await clinicSession(clinic.url, { userId: person.id });
    const sequence = attemptsSequence(person.id);
    for (const client of [pc.connect({ as: "login" }), pc.connect({ as: "person", token })]) {
      expect(await outcome(() => client`select * from cv_auth.verifiers`)).toEqual({ code: "42501" });
      expect(await outcome(() => client.unsafe(`select last_value from ${sequence}`))).toEqual({
        code: "42501",
      });
      expect(await outcome(() => client`select setval(${sequence}, 0)`)).toEqual({ code: "42501" });
      expect(await outcome(() => client`select cv_auth.attempts_sequence(${person.id}, true)`)).toEqual({
        code: "42501",
      });
      expect(await outcome(() => client`select * from cv_auth.sign_in_buckets`)).toEqual({ code: "42501" });
      expect(await outcome(() => client`select setval('cv_auth.sign_in_bucket_0', 0)`)).toEqual({
        code: "42501",
      });
    }
  });
});

/** The buckets' sequences (sql/0020) and their values, by name. */
async function buckets(): Promise<Map<string, string>> {
  const rows = await clinic.sql<{ name: string; value: string | null }[]>`
    select c.oid::regclass::text as name, pg_sequence_last_value(c.oid)::text as value from pg_class c
    where c.relnamespace = 'cv_auth'::regnamespace and c.relkind = 'S' and c.relname ~ '^sign_in_bucket_[0-9]+$'`;
  return new Map(rows.map((row) => [row.name, row.value ?? "0"]));
}

describe("an e-mail with no verifier here (sql/functions/12_sign_in.sql)", () => {
  const unknown = () => `nadie.${randomUUID().slice(0, 8)}@example.mx`;
  let limit: number;
  /** One connection for all of them (each signIn() without one opens another). */
  let client: postgres.Sql;
  beforeAll(async () => {
    client = pc.connect();
    const [settings] = await clinic.sql<{ attempts: number }[]>`
      select lockout_attempts as attempts from cv_auth.settings`;
    limit = settings?.attempts ?? 0;
  });

  it("answers as an enrolled one: 'wrong' up to lockout_attempts, then 'locked' alike, on every connection", async () => {
    const person = await enrolled();
    const nobody = unknown();
    const answers: Record<"enrolled" | "unknown", Answer[]> = { enrolled: [], unknown: [] };
    for (let attempt = 0; attempt <= limit; attempt++) {
      answers.enrolled.push(await signIn(person.email, `intento-${attempt}`, client));
      answers.unknown.push(await signIn(nobody, `intento-${attempt}`, client));
    }
    const wrong = Array.from({ length: limit }, () => ({ ok: false, reason: "wrong" }));
    const locked = { ok: false, reason: "locked", retry_after_s: expect.any(Number) };
    expect(answers.enrolled).toEqual([...wrong, locked]);
    expect(answers.unknown).toEqual([...wrong, locked]);
    const waitEnrolled = answers.enrolled[limit]?.retry_after_s ?? 0;
    const waitUnknown = answers.unknown[limit]?.retry_after_s ?? 0;
    expect(waitUnknown).toBeGreaterThan(14 * 60);
    expect(waitUnknown).toBeLessThanOrEqual(15 * 60);
    expect(Math.abs(waitUnknown - waitEnrolled)).toBeLessThanOrEqual(1);
    const other = await createLogin(clinic, "centrovision_app");
    try {
      expect(await signIn(nobody, PASSWORD, other.connect())).toMatchObject({ reason: "locked" });
    } finally {
      await other.drop();
    }
  });

  it("counts the attempts a caller rolls back, or turns into an error, as an enrolled one's", async () => {
    const nobody = unknown();
    await rolledBack(client, (tx) => tx`select cv_auth.sign_in(${nobody}, 'intento')`);
    for (let attempt = 1; attempt < limit; attempt++) {
      const oracle = client`select 1 / ((cv_auth.sign_in(${nobody}, 'intento') ->> 'ok')::boolean)::int as right`;
      await expect(oracle).rejects.toMatchObject({ code: "22012" });
    }
    expect(await signIn(nobody, PASSWORD, client)).toMatchObject({ ok: false, reason: "locked" });
  });

  it("lets it try again once its lockout is over, as an enrolled one", async () => {
    const nobody = unknown();
    const before = await buckets();
    for (let attempt = 0; attempt <= limit; attempt++) await signIn(nobody, `intento-${attempt}`, client);
    const after = await buckets();
    const moved = [...after].filter(([name, value]) => before.get(name) !== value).map(([name]) => name);
    expect(moved).toHaveLength(1);
    // The lockout's end a second ago, the e-mail's tag (the bits from 2^33 up) kept.
    await clinic.sql`select setval(s, pg_sequence_last_value(s) / 8589934592 * 8589934592
      + extract(epoch from now())::bigint - 1) from (select ${moved[0] ?? ""}::regclass as s) b`;
    for (let attempt = 0; attempt < limit; attempt++) {
      expect(await signIn(nobody, `intento-${attempt}`, client)).toEqual({ ok: false, reason: "wrong" });
    }
    expect(await signIn(nobody, PASSWORD, client)).toMatchObject({ reason: "locked" });
  });

  it("never answers 'locked' to an e-mail nobody tried, whatever others left in its bucket", async () => {
    // Every bucket held by another e-mail's lockout: what guessing many e-mails could leave.
    const names = [...(await buckets()).keys()];
    expect(names).toHaveLength(256);
    await clinic.sql`select setval(b::regclass, 1073741823 * 8589934592 + extract(epoch from now())::bigint + 900)
      from unnest(${names}::text[]) b`;
    try {
      expect(await signIn(unknown(), PASSWORD, client)).toEqual({ ok: false, reason: "wrong" });
      // Nor locks an enrolled person out.
      const person = await enrolled();
      expect(await signIn(person.email, PASSWORD, client)).toMatchObject({ ok: true });
    } finally {
      await clinic.sql`select setval(b::regclass, 0) from unnest(${names}::text[]) b`;
    }
  });

  it("grows no catalog however many e-mails are guessed: a fixed 256 buckets count them", async () => {
    const catalog = () => clinic.sql`
      select (select count(*) from pg_class)::int as relations, (select count(*) from pg_type)::int as types`;
    const before = await catalog();
    expect((await buckets()).size).toBe(256);
    for (let guess = 0; guess < 24; guess++) {
      expect(await signIn(unknown(), PASSWORD, client)).toEqual({ ok: false, reason: "wrong" });
    }
    expect(await catalog()).toEqual(before);
  });

  it("answers a verifier whose attempts sequence is gone as an unknown e-mail, even to the right password", async () => {
    const person = await enrolled();
    await clinic.sql.unsafe(`drop sequence ${attemptsSequence(person.id)}`);
    for (let attempt = 0; attempt < limit; attempt++) {
      expect(await signIn(person.email, PASSWORD, client)).toEqual({ ok: false, reason: "wrong" });
    }
    expect(await signIn(person.email, PASSWORD, client)).toMatchObject({ ok: false, reason: "locked" });
    // An online sign-in makes it again.
    const online = await clinicSession(clinic.url, { userId: person.id, email: person.email });
    await pc.connect({ as: "person", token: online })`select cv_auth.enroll(${PASSWORD})`;
    expect(await signIn(person.email, PASSWORD, client)).toMatchObject({ ok: true });
  });
});

describe("clinic sessions minted by the cloud (cv_clinic_session)", () => {
  const active = { id: randomUUID(), email: `activa.${randomUUID().slice(0, 8)}@example.mx` };
  const banned = randomUUID();
  const deleted = randomUUID();
  const formerlyBanned = randomUUID();
  let keyId: string;

  /** `statement` on the cloud as `role`, with the claims the gateway would set; committed. */
  const onCloud = <T>(
    role: string,
    claims: object | null,
    statement: (tx: postgres.TransactionSql) => Promise<T>,
  ) =>
    outcome(() =>
      cloud.sql.begin(async (tx) => {
        await tx.unsafe(`set local role ${role}`);
        if (claims !== null)
          await tx`select set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
        return statement(tx);
      }),
    );
  const asUser = (id: string, email?: string) => ({
    sub: id,
    email,
    role: "authenticated",
    aud: "authenticated",
  });
  const mint = (tx: postgres.TransactionSql, key = keyId) =>
    tx<
      { session: { token: string; expires_at: string } }[]
    >`select cv_clinic_session(${key}) as session`.then(([row]) => row?.session);

  beforeAll(async () => {
    await cloud.sql`
      insert into auth.users (id, email, banned_until, deleted_at) values
        (${active.id}, ${active.email}, null, null),
        (${banned}, 'suspendida@example.mx', now() + interval '1 day', null),
        (${deleted}, 'baja@example.mx', null, now()),
        (${formerlyBanned}, 'readmitida@example.mx', now() - interval '1 day', null)`;
    const [exported] = await daemon.connect()<{ key: { key_id: string; key: string } }[]>`
      select public.cv_clinic_key_export() as key`;
    keyId = exported?.key.key_id ?? "";
    const registered = await onCloud(
      "service_role",
      null,
      (tx) => tx`select cv_clinic_register_key(${keyId}, ${exported?.key.key ?? ""})`,
    );
    expect(registered).toMatchObject({ ok: expect.anything() });
  });

  it("mints, for a signed-in active user, a session the clinic that registered the key honours", async () => {
    const minted = await onCloud("authenticated", asUser(active.id, active.email), (tx) => mint(tx));
    if (!("ok" in minted) || minted.ok === undefined)
      throw new Error(`not minted: ${JSON.stringify(minted)}`);
    const hours = (Date.parse(minted.ok.expires_at) - Date.now()) / 3_600_000;
    expect(hours).toBeGreaterThan(11.9);
    const person = pc.connect({ as: "person", token: minted.ok.token });
    expect(await person`select auth.uid()::text as uid, auth.jwt() ->> 'sign_in' as sign_in`).toEqual([
      { uid: active.id, sign_in: "online" },
    ]);
    // Online, the person may leave an offline sign-in, and use it.
    await person`select cv_auth.enroll(${PASSWORD})`;
    expect(await signIn(active.email, PASSWORD)).toMatchObject({ ok: true, user: active });
    expect(
      await onCloud("authenticated", asUser(formerlyBanned), (tx) =>
        mint(tx).then((session) => session?.token.length),
      ),
    ).toMatchObject({ ok: expect.any(Number) });
  });

  it("refuses anon, a request without a user, a banned or deleted user, and the service key (42501)", async () => {
    expect(await onCloud("anon", null, (tx) => mint(tx))).toEqual({ code: "42501" });
    expect(await onCloud("authenticated", null, (tx) => mint(tx))).toEqual({ code: "42501" });
    expect(await onCloud("authenticated", asUser(banned), (tx) => mint(tx))).toEqual({ code: "42501" });
    expect(await onCloud("authenticated", asUser(deleted), (tx) => mint(tx))).toEqual({ code: "42501" });
    expect(await onCloud("authenticated", asUser(randomUUID()), (tx) => mint(tx))).toEqual({ code: "42501" });
    expect(await onCloud("service_role", asUser(active.id), (tx) => mint(tx))).toEqual({ code: "42501" });
  });

  it("refuses a key no clinic registered (CV011); another clinic's key gives sessions this one refuses", async () => {
    expect(await onCloud("authenticated", asUser(active.id), (tx) => mint(tx, randomUUID()))).toEqual({
      code: "CV011",
    });
    const otherKey = randomUUID();
    await onCloud(
      "service_role",
      null,
      (tx) => tx`select cv_clinic_register_key(${otherKey}, ${"ab".repeat(32)})`,
    );
    const minted = await onCloud("authenticated", asUser(active.id), (tx) => mint(tx, otherKey));
    const token = "ok" in minted ? (minted.ok?.token ?? "") : "";
    expect(await outcome(() => pc.connect({ as: "person", token })`select auth.uid()`)).toEqual({
      code: "CV010",
    });
  });

  it("registers keys and lists disabled users for the service key only; refuses a malformed key (CV005)", async () => {
    const register = (key: string) => (tx: postgres.TransactionSql) =>
      tx`select cv_clinic_register_key(${randomUUID()}, ${key})`;
    expect(await onCloud("authenticated", asUser(active.id), register("ab".repeat(32)))).toEqual({
      code: "42501",
    });
    for (const malformed of ["zz".repeat(32), "ab".repeat(16), "a".repeat(65), "AB".repeat(32)]) {
      expect(await onCloud("service_role", null, register(malformed)), malformed).toEqual({ code: "CV005" });
    }
    const disabled = (tx: postgres.TransactionSql) =>
      tx<{ users: string[] }[]>`select cv_disabled_users()::text[] as users`.then(([row]) => row?.users);
    expect(await onCloud("service_role", null, disabled)).toEqual({ ok: [banned, deleted].sort() });
    expect(await onCloud("authenticated", asUser(active.id), disabled)).toEqual({ code: "42501" });
  });
});
