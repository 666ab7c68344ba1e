import { asClinicPerson } from "@centrovision/testkit";
import {
  clinicPerson,
  consultation,
  createNode,
  ensureLogin,
  failureCode,
  insertConsultation,
  type SqlNode,
  withLogin,
} from "@centrovision/testkit/nodes";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sync } from "../support/sql-sync.js";

/*
 * sql/0012: the audit trail. Every change made on a node and every opening of a patient's record
 * is an event with its author; the seal chains them by hash; verify finds an edit or a gap; and
 * nobody, the app roles included, can change or remove one.
 */

const PC = { user: "cv_audit_pc", password: "audit-pc-test-password" };
const DAEMON = { user: "cv_audit_sync", password: "audit-sync-test-password" };
let node: SqlNode;
let other: SqlNode;
beforeAll(async () => {
  [node, other] = await Promise.all([createNode("audit_clinic"), createNode("audit_cloud")]);
});
afterAll(async () => {
  await Promise.all([node?.drop(), other?.drop()]);
});

interface Event {
  action: string;
  table_name: string;
  row_id: string;
  patient_id: string | null;
  author: Record<string, string> | null;
}

const eventsOf = (db: SqlNode, rowId: string) =>
  db.sql<Event[]>`
    select action, table_name, row_id, patient_id, author from cv_audit.events
    where row_id = ${rowId} or patient_id = ${rowId} order by txid, written`;
const seal = async (db: SqlNode) => (await db.sql<{ n: number }[]>`select public.cv_audit_seal() as n`)[0]?.n;
const verify = async (db: SqlNode) =>
  (
    await db.sql<
      { v: { ok: boolean; broken_at: number | null; unsealed: number } }[]
    >`select public.cv_audit_verify() as v`
  )[0]?.v;

async function personAtPc(rows: ReturnType<typeof consultation>) {
  const person = await clinicPerson(node, { branches: [rows.branches.id] });
  const pc = postgres(withLogin(node.url, await ensureLogin(PC, "centrovision_app")), {
    max: 1,
    onnotice: () => {},
    connection: asClinicPerson(person.token),
  });
  return { person, pc };
}

describe("the audit trail", () => {
  it("records a person's changes and openings of a record with their author, not the changes a node receives", async () => {
    const rows = consultation();
    await insertConsultation(node.sql, rows);
    const { person, pc } = await personAtPc(rows);
    try {
      await pc`update patients set phone = '55 1111 2222' where id = ${rows.patients.id}`;
      await pc`delete from diagnoses where id = ${rows.diagnoses.id}`;
      await pc`select public.cv_audit_record_opened(${rows.patients.id})`;
      // A patient they do not see is refused, not recorded.
      expect(
        await failureCode(() => pc`select public.cv_audit_record_opened(${consultation().patients.id})`),
      ).toBe("42501");
    } finally {
      await pc.end();
    }
    const events = (await eventsOf(node, rows.patients.id)).filter((e) => e.author !== null);
    expect(events.map((e) => [e.action, e.table_name])).toEqual([
      ["update", "patients"],
      ["delete", "diagnoses"],
      ["open", "patients"],
    ]);
    for (const event of events) {
      expect(event).toMatchObject({
        patient_id: rows.patients.id,
        author: { user: person.userId, sign_in: "online", device: PC.user, node: node.id },
      });
    }
    // The owner's seeding is recorded too, as nobody's.
    expect((await eventsOf(node, rows.patients.id))[0]).toMatchObject({ action: "insert", author: null });

    await sync(node, other);
    expect(await eventsOf(other, rows.patients.id)).toEqual([]);
  });

  it("records a many-row statement's changes as one event per log entry, in the log's order", async () => {
    const rows = [consultation(), consultation(), consultation()];
    const ids = rows.map((r) => r.branches.id);
    await node.sql`insert into branches ${node.sql(rows.map((r) => r.branches))}`;
    await node.sql`insert into patients ${node.sql(rows.map((r) => r.patients))}`;
    await node.sql`update branches set phone = '+52 55 0000 0000' where id in ${node.sql(ids)}`;
    await node.sql`delete from patients where id in ${node.sql(rows.map((r) => r.patients.id))}`;
    const all = [...ids, ...rows.map((r) => r.patients.id)];
    const logged = await node.sql`
      select case when op = 'delete' then 'delete' when base_version is null then 'insert' else 'update' end as action,
        table_name, row_id, version, changed_columns, origin as node_id,
        case when table_name = 'patients' then row_id end as patient_id
      from cv_sync.change_log where row_id in ${node.sql(all)} order by seq`;
    const events = await node.sql`
      select action, table_name, row_id, version, changed_columns, node_id, patient_id
      from cv_audit.events where row_id in ${node.sql(all)} order by txid, written`;
    expect(logged).toHaveLength(12);
    expect(events).toEqual(logged);
    expect(await seal(node)).toBeGreaterThan(0);
    expect(await verify(node)).toMatchObject({ ok: true, unsealed: 0 });
  });

  it("takes an opening a PC held offline at the time it happened, never one ahead of the server's clock", async () => {
    const rows = consultation();
    await insertConsultation(node.sql, rows);
    const { pc } = await personAtPc(rows);
    try {
      const openedAt = new Date(Date.now() - 3 * 3600_000);
      await pc`select public.cv_audit_record_opened(${rows.patients.id}, ${openedAt})`;
      const [event] = await node.sql<{ at: Date }[]>`
        select at from cv_audit.events where patient_id = ${rows.patients.id} and action = 'open'`;
      expect(event?.at.getTime()).toBe(openedAt.getTime());
      const ahead = new Date(Date.now() + 3600_000);
      expect(
        await failureCode(() => pc`select public.cv_audit_record_opened(${rows.patients.id}, ${ahead})`),
      ).toBe("CV009");
    } finally {
      await pc.end();
    }
  });

  it("takes an opening dated before any PC could have held it (a clock reset, -infinity) at the time it arrives", async () => {
    const rows = consultation();
    await insertConsultation(node.sql, rows);
    const { pc } = await personAtPc(rows);
    try {
      const before = Date.now();
      await pc`select public.cv_audit_record_opened(${rows.patients.id}, '-infinity')`;
      await pc`select public.cv_audit_record_opened(${rows.patients.id}, ${new Date("1970-01-01T00:00:00Z")})`;
      const heldLong = new Date(Date.now() - 89 * 86_400_000);
      await pc`select public.cv_audit_record_opened(${rows.patients.id}, ${heldLong})`;
      const events = await node.sql<{ at: Date }[]>`
        select at from cv_audit.events where patient_id = ${rows.patients.id} and action = 'open' order by written`;
      expect(events).toHaveLength(3);
      for (const event of events.slice(0, 2))
        expect(event.at.getTime()).toBeGreaterThanOrEqual(before - 1_000);
      expect(events[2]?.at.getTime()).toBe(heldLong.getTime());
    } finally {
      await pc.end();
    }
  });

  it("shows an administrator the trail of the patients they see, with names; nobody else", async () => {
    const rows = consultation();
    const elsewhere = consultation();
    await insertConsultation(node.sql, rows);
    await insertConsultation(node.sql, elsewhere);
    const { person, pc } = await personAtPc(rows);
    const admin = await clinicPerson(node, {
      branches: [rows.branches.id],
      admin: true,
      fullName: "Dirección Médica",
    });
    const adminPc = postgres(withLogin(node.url, await ensureLogin(PC, "centrovision_app")), {
      max: 1,
      onnotice: () => {},
      connection: asClinicPerson(admin.token),
    });
    try {
      await pc`update patients set phone = '55 1111 3333' where id = ${rows.patients.id}`;
      await pc`select public.cv_audit_record_opened(${rows.patients.id})`;
      await node.sql`update patients set phone = '55 9999 0000' where id = ${elsewhere.patients.id}`;
      // Anyone else, their colleague included, is refused.
      expect(await failureCode(() => pc`select public.cv_audit_trail()`)).toBe("42501");

      const [{ trail }] =
        (await adminPc`select public.cv_audit_trail(p_user_id => ${person.userId}) as trail`) as [
          { trail: Record<string, unknown>[] },
        ];
      const { first_name, last_name, second_last_name } = rows.patients;
      const name = [first_name, last_name, second_last_name].join(" ");
      expect(trail.map((e) => [e.action, e.table, e.patient_name])).toEqual([
        ["update", "patients", name],
        ["open", "patients", name],
      ]);
      expect(trail[0]).toMatchObject({
        row_id: rows.patients.id,
        changed_columns: ["phone"],
        author: { user: person.userId, name: "Recepción", sign_in: "online", device: PC.user },
      });
      // Another branch's patient is not in it, by any filter.
      const [{ other }] = (await adminPc`
        select public.cv_audit_trail(p_patient_id => ${elsewhere.patients.id}) as other`) as [
        { other: unknown[] },
      ];
      expect(other).toEqual([]);
      const [{ all }] = (await adminPc`select public.cv_audit_trail(p_limit => 1000) as all`) as [
        { all: { patient_id: string }[] },
      ];
      expect(all.map((e) => e.patient_id)).not.toContain(elsewhere.patients.id);
    } finally {
      await pc.end();
      await adminPc.end();
    }
  });

  it("seals the events in commit order into a chain that verifies, and finds an edit or a gap", async () => {
    await insertConsultation(node.sql, consultation());
    expect(await seal(node)).toBeGreaterThan(0);
    expect(await verify(node)).toMatchObject({ ok: true, broken_at: null, unsealed: 0 });
    expect(await seal(node)).toBe(0);

    // The owner, past its own trigger, changes an event: the chain breaks there.
    const [victim] = await node.sql<{ event_id: string; position: number }[]>`
      select event_id, position from cv_audit.events where position is not null order by position limit 1 offset 3`;
    await node.sql.begin(async (tx) => {
      await tx`alter table cv_audit.events disable trigger cv_audit_guard`;
      await tx`update cv_audit.events set action = 'open' where event_id = ${victim?.event_id ?? ""}`;
      await tx`alter table cv_audit.events enable trigger cv_audit_guard`;
    });
    expect(await verify(node)).toMatchObject({ ok: false, broken_at: Number(victim?.position) });

    // An event taken out: the chain breaks where it was.
    const gap = await createNode("audit_gap");
    try {
      await insertConsultation(gap.sql, consultation());
      await seal(gap);
      await gap.sql.begin(async (tx) => {
        await tx`alter table cv_audit.events disable trigger cv_audit_guard`;
        await tx`delete from cv_audit.events where position = 5`;
        await tx`alter table cv_audit.events enable trigger cv_audit_guard`;
      });
      expect(await verify(gap)).toMatchObject({ ok: false, broken_at: 5 });
    } finally {
      await gap.drop();
    }
  });

  it("hands a node's sealed events to another only as the continuation of the chain it holds", async () => {
    const source = await createNode("audit_source");
    const cloud = await createNode("audit_receiver");
    try {
      await insertConsultation(source.sql, consultation());
      await seal(source);
      const [page] = await source.sql<{ events: Record<string, unknown>[] }[]>`
        select public.cv_audit_sealed_after(0, 1000) as events`;
      const events = page?.events ?? [];
      expect(events.length).toBeGreaterThan(3);
      const receive = (batch: unknown[]) =>
        cloud.sql<
          { n: number }[]
        >`select public.cv_audit_receive(${JSON.stringify(batch)}::text::jsonb) as n`;
      // A gap, an edited event, or the receiver's own node: refused whole.
      expect(await failureCode(() => receive(events.slice(1)))).toBe("CV005");
      const edited = events.map((e, i) => (i === 2 ? { ...e, action: "open" } : e));
      expect(await failureCode(() => receive(edited))).toBe("CV005");
      expect(await failureCode(() => receive(events.map((e) => ({ ...e, node_id: cloud.id }))))).toBe(
        "CV005",
      );
      expect(await cloud.sql`select 1 from cv_audit.events where node_id = ${source.id}`).toEqual([]);

      expect(await receive(events.slice(0, 2))).toEqual([{ n: 2 }]);
      expect(await receive(events)).toEqual([{ n: events.length - 2 }]);
      expect(await receive(events)).toEqual([{ n: 0 }]);
      const [held] = await cloud.sql<{ head: string }[]>`select public.cv_audit_head(${source.id}) as head`;
      expect(Number(held?.head)).toBe(events.length);
      const [verified] = await cloud.sql<{ v: { ok: boolean; sealed: number } }[]>`
        select public.cv_audit_verify(${source.id}) as v`;
      expect(verified?.v).toMatchObject({ ok: true, sealed: events.length });
      const hashes = async (db: SqlNode) =>
        (
          await db.sql<{ hash: string }[]>`
          select encode(hash, 'hex') as hash from cv_audit.events where node_id = ${source.id} order by position`
        ).map((row) => row.hash);
      expect(await hashes(cloud)).toEqual(await hashes(source));
    } finally {
      await Promise.all([source.drop(), cloud.drop()]);
    }
  });

  it("lets nobody change or remove an event: no privilege for the app and sync roles, the owner stopped by its trigger", async () => {
    await insertConsultation(other.sql, consultation());
    await seal(other);
    const rows = consultation();
    await insertConsultation(node.sql, rows);
    const { pc } = await personAtPc(rows);
    const daemon = postgres(withLogin(other.url, await ensureLogin(DAEMON, "centrovision_sync")), {
      max: 1,
      onnotice: () => {},
    });
    try {
      for (const client of [pc, daemon]) {
        expect(await failureCode(() => client`select count(*) from cv_audit.events`)).toBe("42501");
        expect(await failureCode(() => client`delete from cv_audit.events`)).toBe("42501");
      }
      expect(await failureCode(() => pc`select public.cv_audit_seal()`)).toBe("42501");
      expect(await daemon`select (public.cv_audit_verify() ->> 'ok')::boolean as ok`).toEqual([{ ok: true }]);
    } finally {
      await Promise.all([pc.end(), daemon.end()]);
    }
    expect(await failureCode(() => other.sql`update cv_audit.events set action = 'open'`)).toBe("42501");
    expect(await failureCode(() => other.sql`delete from cv_audit.events`)).toBe("42501");
    expect(await failureCode(() => other.sql`truncate cv_audit.events`)).toBe("42501");
    expect(
      await failureCode(() => other.sql`update cv_audit.settings set retention = '1 year' where singleton`),
    ).toBe("23514");
    expect(await verify(other)).toMatchObject({ ok: true });
  });
});
