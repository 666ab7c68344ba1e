import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { type DoubleBookingChoice, DoubleBookingReview } from "../src/index.js";

const booked = {
  id: "7c9e6679-7425-40de-944b-e07fc1f90ae7",
  starts_at: "2026-12-04T16:00:00.000Z",
  ends_at: "2026-12-04T16:30:00.000Z",
  reason: "Revisión de fondo de ojo",
  patient_name: "Rosa Icaza",
  doctor_name: "Dra. Lucía Hernández",
  room_name: null,
};
const existing = {
  ...booked,
  id: "9a1d7a0e-1111-4222-8333-444455556666",
  starts_at: "2026-12-04T16:15:00.000Z",
  reason: "Control de glaucoma",
  patient_name: "José Núñez",
};

function setup(
  shared: readonly string[],
  resolve?: (choice: DoubleBookingChoice) => Promise<unknown>,
  rows: { booked: typeof booked | null; existing: typeof existing | null } = { booked, existing },
) {
  const calls: DoubleBookingChoice[] = [];
  render(
    <DoubleBookingReview
      {...rows}
      shared={shared}
      timeZone="America/Mexico_City"
      resolve={
        resolve ??
        (async (choice) => {
          calls.push(choice);
        })
      }
    />,
  );
  return calls;
}

const rowOf = (label: string) =>
  within(screen.getByRole("rowheader", { name: label }).closest("tr") as HTMLElement);

describe("DoubleBookingReview", () => {
  it("shows both appointments, in Spanish, with who holds both slots", () => {
    setup(["doctor_id", "room_id"]);
    expect(screen.getByRole("heading", { name: "Cita doble por revisar" })).toBeTruthy();
    expect(screen.getByText(/el médico y el consultorio ya tenían otra cita a esa hora/)).toBeTruthy();
    const offline = rowOf("Agendada sin conexión");
    expect(offline.getByText("Rosa Icaza")).toBeTruthy();
    expect(offline.getByText("Revisión de fondo de ojo")).toBeTruthy();
    // In the branch's time zone: 16:00 UTC is 10:00 in Mexico City.
    expect(offline.getAllByRole("cell")[1]?.textContent).toBe("viernes, 4 de diciembre, 10:00 a 10:30");
    expect(rowOf("La que ya existía").getByText("José Núñez")).toBeTruthy();
  });

  it("says it in the singular for one shared slot, and shows a dash for a row it cannot read", () => {
    setup(["patient_id"], undefined, { booked, existing: null });
    expect(screen.getByText(/el paciente ya tenía otra cita/)).toBeTruthy();
    expect(rowOf("La que ya existía").getAllByRole("cell")[0]?.textContent).toBe("—");
  });

  it.each([
    ["Mantener ambas citas", "keep_both"],
    ["Cancelar la cita de Rosa Icaza agendada sin conexión", "cancel_booked"],
    ["Cancelar la cita de José Núñez que ya existía", "cancel_existing"],
  ] as const)("%s settles it with %s", async (button, choice) => {
    const calls = setup(["doctor_id"]);
    await userEvent.click(screen.getByRole("button", { name: button }));
    expect(calls).toEqual([choice]);
    expect(screen.getByRole("status").textContent).toBe("Cita doble resuelta.");
    expect(screen.getByRole("button", { name: "Mantener ambas citas" }).hasAttribute("disabled")).toBe(true);
  });

  it("shows the failure and lets the reviewer try again", async () => {
    let fail = true;
    setup(["doctor_id"], async () => {
      if (fail) throw new Error("El servidor no responde.");
    });
    await userEvent.click(screen.getByRole("button", { name: "Mantener ambas citas" }));
    expect(screen.getByRole("alert").textContent).toBe(
      "No se pudo resolver la cita doble: El servidor no responde.",
    );
    fail = false;
    await userEvent.click(screen.getByRole("button", { name: "Mantener ambas citas" }));
    expect(screen.getByRole("status").textContent).toBe("Cita doble resuelta.");
  });
});
