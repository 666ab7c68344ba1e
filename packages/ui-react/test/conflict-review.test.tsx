import type { ConflictResolution } from "@centrovision/core/shared";
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { ConflictReview, type SyncConflict } from "../src/index.js";

const ROW_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const base = {
  id: ROW_ID,
  encounter_id: "a1b2c3d4-0000-4000-8000-000000000001",
  eye: "OD",
  iop_mmhg: 18.5,
  iop_method: "goldmann",
  refraction_sphere: -2.25,
  notes: "Sin hallazgos",
  created_at: "2026-11-30T15:00:00.000Z",
};

function makeConflict(overrides: Partial<SyncConflict> = {}): SyncConflict {
  return {
    id: "5f1d7a0e-1111-4222-8333-444455556666",
    table: "exam_eye",
    rowId: ROW_ID,
    localRow: {
      ...base,
      iop_mmhg: 21,
      notes: "PIO elevada",
      updated_at: "2026-11-30T16:00:00.000Z",
      version: "v-l",
    },
    remoteRow: {
      ...base,
      iop_mmhg: 19,
      refraction_sphere: -2.5,
      updated_at: "2026-11-30T16:01:00.000Z",
      version: "v-r",
    },
    localVersion: "v-l",
    remoteVersion: "v-r",
    localHlc: "0001",
    remoteHlc: "0002",
    localOrigin: "clinic",
    remoteOrigin: "cloud",
    winner: "local",
    policy: "manual",
    reason: "edited on both nodes; kept for review",
    columns: ["iop_mmhg", "notes", "refraction_sphere"],
    status: "open",
    resolvedAt: null,
    resolvedBy: null,
    createdAt: "2026-11-30T16:02:00.000Z",
    ...overrides,
  };
}

function setup(conflict: SyncConflict, resolve?: (id: string, r: ConflictResolution) => Promise<unknown>) {
  const calls: [string, ConflictResolution][] = [];
  const resolved: ConflictResolution[] = [];
  render(
    <ConflictReview
      conflict={conflict}
      columnLabels={{ iop_mmhg: "PIO (mmHg)" }}
      resolve={
        resolve ??
        (async (id, resolution) => {
          calls.push([id, resolution]);
        })
      }
      onResolved={(resolution) => resolved.push(resolution)}
    />,
  );
  return { calls, resolved };
}

const rowOf = (name: string) => screen.getByRole("rowheader", { name: new RegExp(`^${name}`) }).closest("tr");

describe("ConflictReview", () => {
  it("shows both versions side by side and marks the differing columns in words", () => {
    setup(makeConflict());
    const iop = rowOf("PIO \\(mmHg\\)");
    expect(iop?.textContent).toContain("PIO (mmHg) (distinto)");
    expect(
      within(iop as HTMLElement)
        .getAllByRole("cell")
        .map((cell) => cell.textContent),
    ).toEqual(["21", "19", expect.stringContaining("Local")]);
    expect(rowOf("notes")?.dataset.changed).toBe("true");
    expect(rowOf("eye")?.dataset.changed).toBeUndefined();
    expect(rowOf("eye")?.textContent).not.toContain("distinto");
    // Sync bookkeeping is not offered for review.
    expect(screen.queryByRole("rowheader", { name: /version|updated_at|^id$/ })).toBeNull();
  });

  it("keeps the local version", async () => {
    const { calls, resolved } = setup(makeConflict());
    await userEvent.click(screen.getByRole("button", { name: "Conservar versión local" }));
    expect(calls).toEqual([[makeConflict().id, { keep: "local" }]]);
    expect(resolved).toEqual([{ keep: "local" }]);
    expect(screen.getByRole("status").textContent).toBe("Conflicto resuelto.");
    expect(screen.getByRole("button", { name: "Conservar versión remota" }).hasAttribute("disabled")).toBe(
      true,
    );
  });

  it("keeps the remote version", async () => {
    const { calls } = setup(makeConflict());
    await userEvent.click(screen.getByRole("button", { name: "Conservar versión remota" }));
    expect(calls).toEqual([[makeConflict().id, { keep: "remote" }]]);
  });

  it("merges the side picked for each differing column", async () => {
    const conflict = makeConflict();
    const { calls } = setup(conflict);
    const iop = within(rowOf("PIO \\(mmHg\\)") as HTMLElement);
    await userEvent.click(iop.getByRole("radio", { name: "Remota" }));
    await userEvent.click(screen.getByRole("button", { name: "Combinar selección" }));
    expect(calls).toEqual([
      [
        conflict.id,
        { merged: { ...conflict.localRow, iop_mmhg: 19, notes: "PIO elevada", refraction_sphere: -2.25 } },
      ],
    ]);
  });

  it("starts the picks on the side the policy chose", async () => {
    const conflict = makeConflict({ winner: "remote" });
    const { calls } = setup(conflict);
    await userEvent.click(within(rowOf("notes") as HTMLElement).getByRole("radio", { name: "Local" }));
    await userEvent.click(screen.getByRole("button", { name: "Combinar selección" }));
    expect(calls[0]?.[1]).toEqual({
      merged: { ...conflict.localRow, iop_mmhg: 19, refraction_sphere: -2.5, notes: "PIO elevada" },
    });
  });

  it("shows the error when resolving fails and lets the reviewer try again", async () => {
    let fail = true;
    const calls: ConflictResolution[] = [];
    setup(makeConflict(), async (_id, resolution) => {
      calls.push(resolution);
      if (fail) throw new Error("[desktop] the clinic server did not answer (timeout after 5 s)");
    });
    await userEvent.click(screen.getByRole("button", { name: "Conservar versión remota" }));
    expect(screen.getByRole("alert").textContent).toBe(
      "No se pudo resolver el conflicto: [desktop] the clinic server did not answer (timeout after 5 s)",
    );
    fail = false;
    await userEvent.click(screen.getByRole("button", { name: "Conservar versión remota" }));
    expect(screen.queryByRole("alert")).toBeNull();
    expect(screen.getByRole("status").textContent).toBe("Conflicto resuelto.");
    expect(calls).toHaveLength(2);
  });

  it("offers no merge when one side deleted the row", () => {
    setup(
      makeConflict({ remoteRow: null, reason: "deleted on the other node, edited here; kept for review" }),
    );
    expect(screen.getByRole("columnheader", { name: "Versión remota (eliminada)" })).toBeTruthy();
    expect(screen.queryByRole("button", { name: "Combinar selección" })).toBeNull();
    expect(screen.queryAllByRole("radio")).toHaveLength(0);
    expect(screen.getByRole("button", { name: "Conservar versión local" })).toBeTruthy();
  });
});
