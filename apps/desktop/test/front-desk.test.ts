import { randomUUID } from "node:crypto";
import { type ConnectionStatus, CvError } from "@centrovision/core";
import { OTHER_PERSONS_EDIT } from "@centrovision/offline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toInvokeFailure } from "../src/backend/commands.js";
import { type Demo, startDemo } from "../src/demo/demo-stack.js";
import { todayInMexicoCity } from "../src/demo/seed.js";
import { call, cloudRows, waitFor } from "./support.js";

/*
 * The front desk's commands (issue 15) through the real transport: branches and where they can be
 * worked on, the agenda with doctors and rooms, who and where a branch books, and what a new
 * patient and a booking must satisfy, on the cloud and on this PC's own copy.
 */

type Failure = { code: string; message: string; issues?: { path: string; message: string }[] };
type BranchView = { id: string; name: string; home: boolean; available: boolean };
type Staff = {
  doctors: { id: string; full_name: string }[];
  rooms: { id: string; name: string; kind: string }[];
};
type Item = {
  id: string;
  patient_id: string;
  doctor_id: string | null;
  room_id: string | null;
  patient_name: string;
  patient_phone: string | null;
  patient_birth_date: string | null;
  doctor_name: string | null;
  room_name: string | null;
};
type Row = { id: string };

let demo: Demo;
let sur: { id: string; name: string };
let polanco: { id: string; name: string };
const today = todayInMexicoCity();
/** A person linked to Polanco alone, holding the doctor role. */
const polancoDoctor = {
  id: randomUUID(),
  full_name: "Dr. Zeta Polanco",
  email: "zeta.polanco@centrovision.mx",
};
/** A room of Sur out of service. */
const closedRoom = randomUUID();

const addDays = (date: string, days: number) => {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
};
const status = async () => (await call<ConnectionStatus>(demo, "get_connection_status")).body;
/** The demo's seed rows. */
const rows = {
  patients: () => demo.clinic.rows.patients ?? [],
  rooms: () => demo.clinic.rows.rooms ?? [],
  appointments: () => demo.clinic.rows.appointments ?? [],
  profiles: () => demo.clinic.rows.profiles ?? [],
};

beforeAll(async () => {
  demo = await startDemo({ port: 0 });
  [sur, polanco] = demo.clinic.branches as [typeof sur, typeof polanco];
  await cloudRows(demo, async (sql) => {
    await sql`insert into profiles ${sql(polancoDoctor)}`;
    await sql`insert into user_roles ${sql({ id: randomUUID(), user_id: polancoDoctor.id, role: "doctor" })}`;
    await sql`insert into user_branches ${sql({ id: randomUUID(), user_id: polancoDoctor.id, branch_id: polanco.id })}`;
    await sql`insert into rooms ${sql({ id: closedRoom, branch_id: sur.id, name: "Quirófano", kind: "surgery", active: false })}`;
    return [];
  });
});

afterAll(() => demo?.stop());

describe("the front desk on the cloud", () => {
  it("list_staff needs a signed-in person, as every command with clinic data", async () => {
    const refused = await call<Failure>(demo, "list_staff", { branch_id: sur.id });
    expect(refused).toMatchObject({ status: 403, body: { code: "unauthorized" } });
    const signedIn = await call(demo, "sign_in", {
      email: demo.accounts.receptionist.email,
      password: demo.accounts.receptionist.password,
    });
    expect(signedIn.status).toBe(200);
    await waitFor("the cloud", async () => (await status()).mode === "supabase", 30_000);
  });

  it("list_branches marks this PC's own branch, every branch available, by name", async () => {
    const { status: code, body } = await call<BranchView[]>(demo, "list_branches");
    expect(code).toBe(200);
    expect(body.map((b) => [b.name, b.home, b.available])).toEqual([
      ["CentroVision Polanco", false, true],
      ["CentroVision Sur", true, true],
    ]);
  });

  it("list_staff: the branch's active doctors and active rooms, by name", async () => {
    const surStaff = (await call<Staff>(demo, "list_staff", { branch_id: sur.id })).body;
    expect(surStaff.doctors.map((d) => d.full_name)).toEqual([
      "Dr. Emilio Cárdenas Uribe",
      "Dra. Lucía Fernández Ibarra",
      "Dra. Mariana Robles Treviño",
    ]);
    expect(surStaff.doctors.map((d) => d.id)).toContain(demo.clinic.doctorId);
    expect(surStaff.rooms.map((r) => [r.name, r.kind])).toEqual([
      ["Consultorio 1", "consultation"],
      ["Consultorio 2", "consultation"],
      ["Estudios especiales", "diagnostics"],
      ["Optometría", "optometry"],
    ]);
    const polancoStaff = (await call<Staff>(demo, "list_staff", { branch_id: polanco.id })).body;
    expect(polancoStaff.doctors.map((d) => d.full_name)).toContain(polancoDoctor.full_name);
    const missing = await call<Failure>(demo, "list_staff", { branch_id: randomUUID() });
    expect(missing).toMatchObject({ status: 404, body: { code: "not_found" } });
  });

  it("get_appointments names each appointment's doctor and room, with the patient's phone and birth date", async () => {
    const { body } = await call<Item[]>(demo, "get_appointments", { branch_id: sur.id, date: today });
    expect(body).toHaveLength(8);
    const patients = new Map(rows.patients().map((p) => [p.id, p]));
    const doctors = new Map(rows.profiles().map((p) => [p.id, p.full_name]));
    const rooms = new Map(rows.rooms().map((r) => [r.id, r.name]));
    for (const item of body) {
      expect(item.doctor_name).toBe(doctors.get(item.doctor_id ?? ""));
      expect(item.room_name).toBe(rooms.get(item.room_id ?? ""));
      expect(item.patient_phone).toBe(patients.get(item.patient_id)?.phone);
      expect(item.patient_birth_date).toBe(patients.get(item.patient_id)?.birth_date);
      expect(item.doctor_name).toEqual(expect.any(String));
      expect(item.room_name).toEqual(expect.any(String));
    }
  });
});

describe("registering a patient: every problem at once, in Spanish", () => {
  const patient = (fields: Record<string, unknown>) => ({
    branch_id: sur.id,
    first_name: "Renata",
    last_name: "Quintero",
    birth_date: "1991-04-12",
    sex: "female",
    phone: "55 1234 5678",
    ...fields,
  });
  const refusal = async (fields: Record<string, unknown>) => {
    const { status: code, body } = await call<Failure>(demo, "create_patient", patient(fields));
    expect(code, JSON.stringify(body)).toBe(400);
    expect(body.code).toBe("invalid_input");
    return body;
  };
  const stored = async (id: string) =>
    (
      await cloudRows(
        demo,
        (sql) => sql<{ phone: string; document_id: string | null; email: string | null }[]>`
          select phone, document_id, email from patients where id = ${id}`,
      )
    )[0];

  it("a birth date in the future, even tomorrow in the branch's time zone, or before 1900 is refused; today is fine", async () => {
    for (const birth_date of ["2030-01-01", addDays(today, 1)]) {
      const body = await refusal({ birth_date });
      expect(body.issues).toEqual([
        { path: "birth_date", message: "fecha de nacimiento: no puede ser una fecha futura" },
      ]);
      expect(body.message).toBe("fecha de nacimiento: no puede ser una fecha futura.");
    }
    const old = await refusal({ birth_date: "1899-12-31" });
    expect(old.message).toBe("fecha de nacimiento: no puede ser anterior a 1900.");
    // The registration form shows the message as is: Spanish words first.
    const sex = await refusal({ sex: "" });
    expect(sex.issues).toEqual([
      {
        path: "sex",
        message:
          "sexo: elija femenino, masculino, intersexual o no especificado (female, male, intersex, unknown)",
      },
    ]);
    const newborn = await call<Row>(
      demo,
      "create_patient",
      patient({ birth_date: today, phone: "5598765432" }),
    );
    expect(newborn.status).toBe(200);
  });

  it("phones must be Mexican numbers; punctuation as typed is kept, dots become spaces", async () => {
    for (const phone of [
      "12345",
      "+1 555 123 4567",
      "55 1234 567a",
      "+52 55 1234 56",
      "55 1234 56789",
      "",
      "+55 1234 5678",
    ]) {
      const body = await refusal({ phone });
      expect(
        body.issues?.map((i) => i.path),
        phone,
      ).toEqual(["phone"]);
      expect(body.message, phone).toMatch(/^teléfono: /);
    }
    const accepted: [string, string][] = [
      ["  +52 (55) 1234-5678 ", "+52 (55) 1234-5678"],
      ["52 1 55 1234 5678", "52 1 55 1234 5678"],
      ["55.1234.5678", "55 1234 5678"],
      ["(33) 3615-2000", "(33) 3615-2000"],
    ];
    for (const [phone, kept] of accepted) {
      const created = await call<Row>(demo, "create_patient", patient({ phone }));
      expect(created.status, phone).toBe(200);
      expect((await stored(created.body.id))?.phone).toBe(kept);
    }
  });

  it("a document of 18 characters must have a CURP's shape; other documents 4 to 32 letters, digits or dashes", async () => {
    const notCurp = await refusal({ document_id: "ABCDEFGHIJKLMNOPQR" });
    expect(notCurp.issues).toEqual([
      {
        path: "document_id",
        message:
          "CURP: 18 caracteres con el formato de la CURP (4 letras, fecha AAMMDD, H o M, 5 letras, una letra o dígito y un dígito)",
      },
    ]);
    expect((await refusal({ document_id: "AB" })).issues?.map((i) => i.path)).toEqual(["document_id"]);
    expect((await refusal({ document_id: "GOMA850101XDFRRN09" })).message).toMatch(/^CURP: /);
    const curp = await call<Row>(demo, "create_patient", patient({ document_id: "goma850101hdfrrn09" }));
    expect(curp.status).toBe(200);
    expect((await stored(curp.body.id))?.document_id).toBe("GOMA850101HDFRRN09");
    const passport = await call<Row>(
      demo,
      "create_patient",
      patient({ document_id: "G12345678", email: " Renata.Q@Correo.MX " }),
    );
    expect(passport.status).toBe(200);
    expect(await stored(passport.body.id)).toMatchObject({
      document_id: "G12345678",
      email: "renata.q@correo.mx",
    });
    // Blank optional fields are absent, not refused.
    const blanks = await call<Row>(demo, "create_patient", patient({ document_id: "", email: "" }));
    expect(blanks.status).toBe(200);
    expect(await stored(blanks.body.id)).toMatchObject({ document_id: null, email: null });
  });

  it("several problems are listed together, one issue per field, without echoing what was typed", async () => {
    const body = await refusal({
      first_name: " ",
      birth_date: "2031-02-03",
      phone: "0-800-PACIENTE",
      document_id: "XXXXXXXXXXXXXXXXX1",
      email: "paciente-sin-arroba",
    });
    expect(body.issues?.map((i) => i.path)).toEqual([
      "first_name",
      "document_id",
      "birth_date",
      "phone",
      "email",
    ]);
    expect(body.message).toBe(
      [
        "nombre: es obligatorio",
        "CURP: 18 caracteres con el formato de la CURP (4 letras, fecha AAMMDD, H o M, 5 letras, una letra o dígito y un dígito)",
        "fecha de nacimiento: no puede ser una fecha futura",
        "teléfono: número de México de 10 dígitos, por ejemplo 55 1234 5678 o +52 55 1234 5678",
        "correo electrónico: escriba una dirección como nombre@dominio.mx",
      ]
        .join("; ")
        .concat("."),
    );
    expect(JSON.stringify(body)).not.toMatch(/PACIENTE|XXXX|sin-arroba|2031/);
  });
});

describe("booking: past times, double bookings and the branch's own doctors and rooms", () => {
  /** Past the seeded week: only this block's bookings. */
  const day = addDays(today, 10);
  const surPatients = () => rows.patients().filter((p) => p.branch_id === sur.id);
  const surRooms = () => rows.rooms().filter((r) => r.branch_id === sur.id);
  const book = (fields: Record<string, unknown>) =>
    call<Row & Failure>(demo, "create_appointment", {
      branch_id: sur.id,
      reason: "Control de glaucoma",
      type: "follow_up",
      ...fields,
    });

  it("a time more than 5 minutes past is refused, with its path", async () => {
    for (const starts_at of [new Date(Date.now() - 3_600_000).toISOString(), "1999-05-04T10:00:00-06:00"]) {
      const { status: code, body } = await book({ patient_id: surPatients()[0]?.id, starts_at });
      expect(code).toBe(400);
      expect(body).toMatchObject({
        code: "invalid_input",
        message: "La hora de la cita ya pasó: elija una hora futura.",
        issues: [{ path: "starts_at" }],
      });
    }
  });

  it("the same patient, doctor or room at an overlapping time is a conflict naming which and when; confirmed, it is booked", async () => {
    const [p1, p2] = surPatients() as unknown as [Row & { first_name: string }, Row];
    const [r1, r2] = surRooms() as unknown as [Row, Row];
    const doctor = demo.clinic.doctorId;
    // 10:00 in the branch's time zone, sent in UTC: the message shows the branch's time.
    const first = await book({
      patient_id: p1.id,
      doctor_id: doctor,
      room_id: r1.id,
      starts_at: `${day}T16:00:00Z`,
    });
    expect(first.status, JSON.stringify(first.body)).toBe(200);

    const samePatient = await book({ patient_id: p1.id, starts_at: `${day}T10:15:00-06:00` });
    expect(samePatient.status).toBe(409);
    expect(samePatient.body.code).toBe("conflict");
    expect(samePatient.body.message).toBe(
      "La cita se empalma con otra: el paciente ya tiene una cita de 10:00 a 10:30. Elija otra hora, o confirme la cita doble para agendarla de todos modos.",
    );
    expect(samePatient.body.issues?.map((i) => i.path)).toEqual(["patient_id"]);

    const sameDoctor = await book({
      patient_id: p2.id,
      doctor_id: doctor,
      starts_at: `${day}T09:45:00-06:00`,
    });
    expect(sameDoctor.status).toBe(409);
    expect(sameDoctor.body.issues).toEqual([
      { path: "doctor_id", message: "el médico ya tiene una cita de 10:00 a 10:30" },
    ]);
    const sameRoom = await book({ patient_id: p2.id, room_id: r1.id, starts_at: `${day}T10:29:00-06:00` });
    expect(sameRoom.status).toBe(409);
    expect(sameRoom.body.issues).toEqual([
      { path: "room_id", message: "el consultorio está ocupado de 10:00 a 10:30" },
    ]);
    const all = await book({
      patient_id: p1.id,
      doctor_id: doctor,
      room_id: r1.id,
      starts_at: `${day}T10:00:00-06:00`,
    });
    expect(all.body.issues?.map((i) => i.path)).toEqual(["patient_id", "doctor_id", "room_id"]);
    // The other patient's name never shows, only the time.
    expect(JSON.stringify([samePatient.body, sameDoctor.body, sameRoom.body, all.body])).not.toContain(
      p1.first_name,
    );

    // Back to back is no overlap: [10:00, 10:30) then [10:30, 11:00).
    const next = await book({
      patient_id: p1.id,
      doctor_id: doctor,
      room_id: r1.id,
      starts_at: `${day}T10:30:00-06:00`,
    });
    expect(next.status).toBe(200);
    // The receptionist confirms the double booking.
    const confirmed = await book({
      patient_id: p2.id,
      doctor_id: doctor,
      room_id: r2.id,
      starts_at: `${day}T10:15:00-06:00`,
      allow_overlap: true,
    });
    expect(confirmed.status, JSON.stringify(confirmed.body)).toBe(200);
    const inCloud = await cloudRows(
      demo,
      (sql) => sql`select count(*)::int as n from appointments where doctor_id = ${doctor}
        and starts_at < ${`${day}T10:30:00-06:00`} and ends_at > ${`${day}T10:00:00-06:00`}`,
    );
    expect(inCloud).toEqual([{ n: 2 }]);
  });

  it("cancelled and no-show appointments do not hold their slot", async () => {
    const [, , p3, p4] = surPatients() as Row[];
    const room = surRooms()[1] as Row;
    for (const [hour, status] of [
      [12, "cancelled"],
      [13, "no_show"],
    ] as const) {
      const starts_at = `${day}T${hour}:00:00-06:00`;
      const held = await book({ patient_id: p3?.id, room_id: room.id, starts_at });
      expect(held.status).toBe(200);
      expect((await book({ patient_id: p4?.id, room_id: room.id, starts_at })).status).toBe(409);
      const changed = await call(demo, "update_appointment_status", { appointment_id: held.body.id, status });
      expect(changed.status).toBe(200);
      const freed = await book({ patient_id: p4?.id, room_id: room.id, starts_at });
      expect(freed.status, JSON.stringify(freed.body)).toBe(200);
    }
  });

  it("a room or doctor of another branch, or a room out of service, is refused (both listed at once)", async () => {
    const patient = surPatients()[5]?.id;
    const polancoRoom = rows.rooms().find((r) => r.branch_id === polanco.id)?.id;
    const starts_at = `${day}T15:00:00-06:00`;
    const both = await book({
      patient_id: patient,
      room_id: polancoRoom,
      doctor_id: polancoDoctor.id,
      starts_at,
    });
    expect(both.status).toBe(400);
    expect(both.body).toMatchObject({
      code: "invalid_input",
      message:
        "consultorio: no pertenece a esta sucursal; elija uno de la lista; médico: no atiende en esta sucursal; elija uno de la lista.",
    });
    expect(both.body.issues?.map((i) => i.path)).toEqual(["room_id", "doctor_id"]);
    const closed = await book({ patient_id: patient, room_id: closedRoom, starts_at });
    expect(closed.body.issues).toEqual([
      { path: "room_id", message: "consultorio: está fuera de servicio; elija otro" },
    ]);
    const unknownRoom = await book({ patient_id: patient, room_id: randomUUID(), starts_at });
    expect(unknownRoom.body.issues?.map((i) => i.path)).toEqual(["room_id"]);
  });
});

describe("on this PC's own copy (no server answers)", () => {
  it("goes offline", async () => {
    await Promise.all([demo.setInternet(false), demo.setClinicServer(false)]);
    await waitFor("the offline tier", async () => (await status()).mode === "offline", 20_000);
  });

  it("list_branches keeps the other branches of the last server's list, unavailable; only this PC's is available", async () => {
    const { status: code, body } = await call<BranchView[]>(demo, "list_branches");
    expect(code).toBe(200);
    expect(body.map((b) => [b.id, b.home, b.available])).toEqual([
      [polanco.id, false, false],
      [sur.id, true, true],
    ]);
  });

  it("another branch's agenda is unavailable, saying which branch this PC keeps, never that it does not exist", async () => {
    const { status: code, body } = await call<Failure>(demo, "get_appointments", {
      branch_id: polanco.id,
      date: today,
    });
    expect(code).toBe(503);
    expect(body.code).toBe("unavailable");
    expect(body.message).toBe(
      "La sucursal CentroVision Polanco no está disponible sin conexión: este equipo guarda solo la agenda de CentroVision Sur. Vuelva a intentarlo cuando regrese la conexión.",
    );
    const booking = await call<Failure>(demo, "list_staff", { branch_id: polanco.id });
    expect(booking).toMatchObject({ status: 503, body: { code: "unavailable" } });
  });

  it("this PC's own branch: its agenda with doctors and rooms, its staff, and the same double-booking rule", async () => {
    const { body } = await call<Item[]>(demo, "get_appointments", { branch_id: sur.id, date: today });
    expect(body).toHaveLength(8);
    expect(body.every((item) => item.doctor_name !== null && item.room_name !== null)).toBe(true);
    const staff = (await call<Staff>(demo, "list_staff", { branch_id: sur.id })).body;
    expect(staff.doctors).toHaveLength(3);
    expect(staff.rooms).toHaveLength(4);

    // Tomorrow's first appointment at Sur is in the copy: its patient cannot be booked over it.
    const seeded = rows
      .appointments()
      .find((a) => a.branch_id === sur.id && a.starts_at.startsWith(addDays(today, 1)));
    expect(seeded).toBeDefined();
    const clash = await call<Failure>(demo, "create_appointment", {
      branch_id: sur.id,
      patient_id: seeded?.patient_id,
      starts_at: seeded?.starts_at.replace(":00:00-06:00", ":10:00-06:00"),
      reason: "Control",
      type: "follow_up",
    });
    expect(clash.status, JSON.stringify(clash.body)).toBe(409);
    expect(clash.body.issues?.map((i) => i.path)).toEqual(["patient_id"]);
  });

  it("conflict review says the clinic server does not answer, and the generic message is true offline too", async () => {
    const { status: code, body } = await call<Failure>(demo, "list_conflicts");
    expect(code).toBe(503);
    expect(body.message).toBe(
      "La revisión de conflictos necesita el servidor de la clínica, que ahora no responde. Intente de nuevo en unos minutos.",
    );
    const resolve = await call<Failure>(demo, "resolve_conflict", {
      conflict_id: randomUUID(),
      keep: "local",
    });
    expect(resolve.body.message).toMatch(/^La revisión de conflictos necesita el servidor de la clínica/);
    const generic = toInvokeFailure(
      new CvError("unavailable", "[adapter-postgres] cannot reach 10.0.0.2:5432"),
    );
    expect(generic.message).toBe(
      "No se pudo consultar el servidor: sin conexión en este momento. Intente de nuevo en unos segundos.",
    );
    const otherPersons = toInvokeFailure(
      new CvError("conflict", "[offline] patients 1 has an edit another person made on this PC", {
        constraint: OTHER_PERSONS_EDIT,
      }),
    );
    expect(otherPersons).toEqual({
      code: "conflict",
      message: expect.stringMatching(/^Otra persona modificó este registro en este equipo sin conexión/),
    });
  });
});
