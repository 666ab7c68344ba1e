import type { ConnectionStatus } from "@centrovision/core";
import { act, render, screen } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createInvokeStatusSource, NetworkStatusProvider, SyncIndicator } from "../src/index.js";
import { makeStatus } from "./support/status.js";

/**
 * The transport boundary: stands in for `invoke` from `@tauri-apps/api` (or the desktop's HTTP
 * shim), answering each command from a function the test controls.
 */
function fakeBackend(answer: (command: string) => Promise<unknown> | unknown) {
  const calls: string[] = [];
  const invoke = async (command: string) => {
    calls.push(command);
    return answer(command);
  };
  return { calls, invoke };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
});

afterEach(() => {
  vi.useRealTimers();
});

const tick = (ms: number) => act(() => vi.advanceTimersByTimeAsync(ms));

describe("createInvokeStatusSource", () => {
  it("polls get_connection_status only while subscribed", async () => {
    const backend = fakeBackend(() => makeStatus("supabase"));
    const source = createInvokeStatusSource({ invoke: backend.invoke, intervalMs: 1000 });
    await vi.advanceTimersByTimeAsync(5000);
    expect(backend.calls).toEqual([]);

    const unsubscribe = source.subscribe(() => {});
    await vi.advanceTimersByTimeAsync(3500);
    expect(backend.calls).toEqual(Array(4).fill("get_connection_status"));
    expect(source.getSnapshot().status?.mode).toBe("supabase");

    unsubscribe();
    await vi.advanceTimersByTimeAsync(5000);
    expect(backend.calls).toHaveLength(4);
  });

  it("never asks a slow backend again before it answered", async () => {
    let answer: (status: ConnectionStatus) => void = () => {};
    const backend = fakeBackend(() => new Promise((resolve) => (answer = resolve)));
    const source = createInvokeStatusSource({ invoke: backend.invoke, intervalMs: 200, timeoutMs: 60_000 });
    source.subscribe(() => {});
    void source.refresh();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(backend.calls).toHaveLength(1);
    answer(makeStatus("local"));
    await vi.advanceTimersByTimeAsync(200);
    expect(backend.calls).toHaveLength(2);
  });

  it("returns the same snapshot until the status changes", async () => {
    const status = makeStatus("local");
    const backend = fakeBackend(() => status);
    const source = createInvokeStatusSource({ invoke: backend.invoke });
    await source.refresh();
    const first = source.getSnapshot();
    await source.refresh();
    expect(source.getSnapshot()).toBe(first);
  });

  it("drives the indicator from cloud to clinic server to offline", async () => {
    let current = makeStatus("supabase");
    const backend = fakeBackend(() => current);
    const source = createInvokeStatusSource({ invoke: backend.invoke, intervalMs: 500 });
    render(
      <NetworkStatusProvider source={source}>
        <SyncIndicator />
      </NetworkStatusProvider>,
    );
    expect(screen.getByRole("status").getAttribute("title")).toBe("Comprobando conexión...");
    await tick(0);
    expect(screen.getByRole("status").getAttribute("title")).toBe("Conectado a la nube");
    current = makeStatus("local", { pendingChanges: 3 });
    await tick(500);
    expect(screen.getByRole("status").getAttribute("title")).toBe("Servidor local (3 pendientes)");
    current = makeStatus("offline", { pendingChanges: 1 });
    await tick(500);
    expect(screen.getByRole("status").getAttribute("title")).toBe("Sin conexión (1 pendiente)");
  });

  it("triggerSync runs trigger_sync, then reads the status at once", async () => {
    let pending = 3;
    const backend = fakeBackend((command) => {
      if (command === "trigger_sync") pending = 0;
      return makeStatus("local", { pendingChanges: pending });
    });
    const source = createInvokeStatusSource({ invoke: backend.invoke });
    await source.refresh();
    await source.triggerSync();
    expect(backend.calls).toEqual(["get_connection_status", "trigger_sync", "get_connection_status"]);
    expect(source.getSnapshot().status?.pendingChanges).toBe(0);
  });

  it("passes on what the PC's offline copy lacks, and refuses it per table only as whole counts of known tables", async () => {
    let answer: unknown = { ...makeStatus("offline"), notInCopy: { appointments: 2, patients: 1 } };
    const source = createInvokeStatusSource({ invoke: async () => answer });
    await source.refresh();
    expect(source.getSnapshot().status?.notInCopy).toEqual({ appointments: 2, patients: 1 });
    for (const notInCopy of [{ citas: 1 }, { appointments: -1 }, { appointments: "2" }, [1], null]) {
      answer = { ...makeStatus("offline"), notInCopy };
      await source.refresh();
      expect(source.getSnapshot().error?.message, JSON.stringify(notInCopy)).toContain(
        "notInCopy must map table names to whole numbers ≥ 0",
      );
    }
  });

  it("uses the command names it is given", async () => {
    const backend = fakeBackend(() => makeStatus("supabase"));
    const source = createInvokeStatusSource({
      invoke: backend.invoke,
      statusCommand: "status",
      syncCommand: "sync_now",
    });
    await source.triggerSync();
    expect(backend.calls).toEqual(["sync_now", "status"]);
  });

  it("rejects a malformed status, naming the fields, and keeps the last good one", async () => {
    let answer: unknown = makeStatus("local");
    const source = createInvokeStatusSource({ invoke: async () => answer });
    await source.refresh();
    answer = {
      mode: "cloud",
      pendingChanges: -1,
      isSyncing: "no",
      lastSyncAt: 5,
      tiers: {},
      notInCopy: { appointments: 1.5 },
    };
    await source.refresh();
    const { status, error } = source.getSnapshot();
    expect(status?.mode).toBe("local");
    expect(error).toMatchObject({ name: "CentroVisionError", code: "invalid_input" });
    const fields = [
      "mode",
      "pendingChanges",
      "isSyncing",
      "lastSyncAt",
      "tiers.cloud.available",
      "notInCopy",
    ];
    for (const field of fields) {
      expect(error?.message).toContain(field);
    }
    expect(error?.message).toContain("same CentroVision version");
  });

  it("keeps a backend's error code and message", async () => {
    const source = createInvokeStatusSource({
      invoke: () =>
        Promise.reject({
          name: "CentroVisionError",
          code: "unavailable",
          message: "[desktop] router closed",
        }),
    });
    await source.refresh();
    expect(source.getSnapshot().error).toMatchObject({
      code: "unavailable",
      message: "[desktop] router closed",
    });
  });

  it("fails a read that does not answer in time with timeout", async () => {
    const source = createInvokeStatusSource({ invoke: () => new Promise(() => {}), timeoutMs: 1000 });
    const read = source.refresh();
    await vi.advanceTimersByTimeAsync(1000);
    await read;
    expect(source.getSnapshot().error).toMatchObject({
      code: "timeout",
      message:
        "[ui-react] get_connection_status did not answer within 1000 ms; is the CentroVision backend running?",
    });
  });

  it("lists every bad option", () => {
    expect(() =>
      createInvokeStatusSource({ invoke: "no" as never, intervalMs: 10, timeoutMs: 1.5, statusCommand: "" }),
    ).toThrow(
      "[ui-react] createInvokeStatusSource: invoke must be a function (command, args) => Promise; " +
        "intervalMs must be a whole number of milliseconds ≥ 100; timeoutMs must be a whole number of " +
        "milliseconds ≥ 100; statusCommand must be a non-empty command name",
    );
  });
});
