import { describe, expect, it } from "vitest";
import { availabilityNote, branchLabel } from "../src/ui/branch-picker.js";
import { notInCopyWords } from "../src/ui/mode-banner.js";
import { othersUnsentWords } from "../src/ui/others-unsent.js";
import { statusWords } from "../src/ui/status-words.js";
import { addDays, ageOn, type Branch, dayHeading, minutesIn } from "../src/ui/types.js";

// The UI's pure wording helpers, without a browser (they run with the browser tests: the desktop's
// unit tests are the backend's).

const branch = (name: string, home: boolean, available: boolean) =>
  ({ id: name, name, home, available, timezone: "America/Mexico_City" }) as Branch;

describe("the words the receptionist reads", () => {
  it("dates in Spanish, in the branch's time zone, and whole years of age", () => {
    expect(dayHeading("2026-12-04", "America/Mexico_City")).toBe("viernes 4 de diciembre de 2026");
    expect(dayHeading("2027-01-01", "America/Tijuana")).toBe("viernes 1 de enero de 2027");
    expect(addDays("2026-12-31", 1)).toBe("2027-01-01");
    expect(addDays("2026-03-01", -1)).toBe("2026-02-28");
    expect(ageOn("1985-03-14", "2026-03-13")).toBe(40);
    expect(ageOn("1985-03-14", "2026-03-14")).toBe(41);
    expect(minutesIn("2026-12-04T15:30:00Z", "America/Mexico_City")).toBe(9 * 60 + 30);
  });

  it("branches: the PC's own said so, the others marked when the mode cannot serve them, and which are", () => {
    const sur = branch("CentroVision Sur", true, true);
    const polanco = branch("CentroVision Polanco", false, false);
    expect(branchLabel(sur, "offline")).toBe("CentroVision Sur (sucursal de este equipo)");
    expect(branchLabel(polanco, "offline")).toBe("CentroVision Polanco — no disponible sin conexión");
    expect(availabilityNote([polanco, sur], "offline")).toBe(
      "Disponible sin conexión: solo CentroVision Sur.",
    );
    expect(availabilityNote([{ ...polanco, available: true }, sur], "supabase")).toBeNull();
  });

  it("what the offline copy lacks, the agenda's rows first, or nothing when it lacks nothing", () => {
    expect(notInCopyWords({})).toBeNull();
    expect(notInCopyWords(undefined)).toBeNull();
    expect(notInCopyWords({ appointments: 0 })).toBeNull();
    expect(notInCopyWords({ appointments: 1 })).toBe(
      "No se pudieron copiar a este equipo 1 cita: lo que se ve sin conexión puede estar incompleto.",
    );
    expect(notInCopyWords({ patients: 1, appointments: 2 })).toBe(
      "No se pudieron copiar a este equipo 2 citas y 1 paciente: lo que se ve sin conexión puede estar incompleto.",
    );
    expect(notInCopyWords({ exam_eye: 2, encounters: 1, appointments: 3 })).toBe(
      "No se pudieron copiar a este equipo 3 citas, 1 consulta y 2 exámenes de un ojo: lo que se ve sin conexión puede estar incompleto.",
    );
  });

  it("whose offline changes wait on this PC, named when this person may read their profile", () => {
    expect(othersUnsentWords([])).toBeNull();
    expect(othersUnsentWords([{ name: "Paola Mendoza", changes: 1, refused: 0 }])).toBe(
      "En este equipo espera 1 cambio de Paola Mendoza hecho sin conexión: se enviará cuando esa persona vuelva a iniciar sesión aquí.",
    );
    expect(othersUnsentWords([{ name: null, changes: 3, refused: 0 }])).toBe(
      "En este equipo esperan 3 cambios de otra persona hechos sin conexión: se enviarán cuando esa persona vuelva a iniciar sesión aquí.",
    );
    expect(othersUnsentWords([{ name: "Paola Mendoza", changes: 0, refused: 1 }])).toBe(
      "En este equipo espera 1 cambio de Paola Mendoza que el servidor rechazó: esa persona debe revisarlo en Conflictos al volver a iniciar sesión aquí.",
    );
    expect(othersUnsentWords([{ name: "Paola Mendoza", changes: 2, refused: 1 }])).toBe(
      "En este equipo esperan 2 cambios hechos sin conexión por Paola Mendoza y 1 rechazado por el servidor: se enviarán o se revisarán en Conflictos cuando esa persona vuelva a iniciar sesión aquí.",
    );
    expect(othersUnsentWords([{ name: "Paola Mendoza", changes: 1, refused: 1 }])).toBe(
      "En este equipo esperan 1 cambio hecho sin conexión por Paola Mendoza y 1 rechazado por el servidor: se enviarán o se revisarán en Conflictos cuando esa persona vuelva a iniciar sesión aquí.",
    );
    expect(
      othersUnsentWords([
        { name: "Paola Mendoza", changes: 1, refused: 0 },
        { name: "Dra. Lucía Fernández Ibarra", changes: 1, refused: 2 },
        { name: null, changes: 2, refused: 0 },
      ]),
    ).toBe(
      "En este equipo esperan cambios hechos sin conexión de Paola Mendoza (1 sin enviar), Dra. Lucía Fernández Ibarra (1 sin enviar, 2 rechazados) y otra persona (2 sin enviar): se enviarán, o se revisarán en Conflictos, cuando cada persona vuelva a iniciar sesión aquí.",
    );
    expect(
      othersUnsentWords([
        { name: "Paola Mendoza", changes: 1, refused: 0 },
        { name: null, changes: 2, refused: 0 },
      ]),
    ).toBe(
      "En este equipo esperan cambios hechos sin conexión de Paola Mendoza (1 sin enviar) y otra persona (2 sin enviar): se enviarán cuando cada persona vuelva a iniciar sesión aquí.",
    );
    expect(
      othersUnsentWords([
        { name: "Paola Mendoza", changes: 0, refused: 1 },
        { name: null, changes: 0, refused: 2 },
      ]),
    ).toBe(
      "En este equipo esperan cambios hechos sin conexión de Paola Mendoza (1 rechazado) y otra persona (2 rechazados): se revisarán en Conflictos cuando cada persona vuelva a iniciar sesión aquí.",
    );
  });

  it("the router's reasons and the tiers' errors in Spanish, without the packages' tags", () => {
    expect(statusWords("starting: checking every tier")).toBe("arrancando: comprobando cada nivel");
    expect(
      statusWords("cloud stopped answering (timeout: [adapter-supabase] probe timed out after 600 ms)"),
    ).toBe("la nube dejó de responder (tiempo agotado: comprobación: sin respuesta en 600 ms)");
    expect(
      statusWords(
        "unavailable: [adapter-postgres] cannot reach the clinic server at 127.0.0.1:5432/centrovision (connection refused)",
      ),
    ).toBe(
      "no disponible: no se puede contactar el servidor de la clínica en 127.0.0.1:5432/centrovision (conexión rechazada)",
    );
    expect(statusWords("cloud answers again; waiting for 3 pending changes to reach it first")).toBe(
      "la nube responde de nuevo; esperando a que le lleguen primero 3 cambios pendientes",
    );
    expect(statusWords("the link is unstable (7 switches in 5 min): staying on clinic for 10 min")).toBe(
      "la conexión es inestable (7 cambios en 5 min): se queda en el servidor de la clínica durante 10 min",
    );
    expect(statusWords("[core] cloud stopped answering")).toBe("la nube dejó de responder");
  });
});
