import type { ConnectionStatus } from "@centrovision/core";
import { act, render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { BehaviorSubject, Subject } from "rxjs";
import { describe, expect, it } from "vitest";
import {
  createObservableStatusSource,
  NetworkStatusProvider,
  OFFLINE_ANNOUNCEMENT,
  SyncIndicator,
  useConnectionStatus,
  useNetworkStatus,
} from "../src/index.js";
import { makeStatus } from "./support/status.js";

function renderIndicator(initial: ConnectionStatus, triggerSync?: () => Promise<unknown>) {
  const status$ = new BehaviorSubject(initial);
  const source = createObservableStatusSource({ status$, ...(triggerSync && { triggerSync }) });
  const view = render(
    <NetworkStatusProvider source={source}>
      <SyncIndicator />
    </NetworkStatusProvider>,
  );
  const push = (status: ConnectionStatus) => act(() => status$.next(status));
  return { ...view, push };
}

const icon = (container: HTMLElement) => container.querySelector("svg")?.getAttribute("class") ?? "";

describe("SyncIndicator", () => {
  it.each([
    ["supabase", 0, "cloud", "lucide-cloud", "Conectado a la nube", "rgb(21, 128, 61)"],
    ["local", 3, "server", "lucide-server", "Servidor local (3 pendientes)", "rgb(161, 98, 7)"],
    ["offline", 3, "offline", "lucide-wifi-off", "Sin conexión (3 pendientes)", "rgb(185, 28, 28)"],
  ] as const)(
    "in %s mode with %i pending shows the %s state",
    (mode, pending, state, iconClass, label, color) => {
      const { container } = renderIndicator(makeStatus(mode, { pendingChanges: pending }));
      const status = screen.getByRole("status");
      expect(status.getAttribute("title")).toBe(label);
      expect(status.textContent).toBe(label);
      expect(status.dataset.state).toBe(state);
      expect(status.style.color).toBe(color);
      expect(icon(container)).toContain(iconClass);
      expect(container.querySelector("svg")?.getAttribute("aria-hidden")).toBe("true");
    },
  );

  it.each([
    [0, "Servidor local"],
    [1, "Servidor local (1 pendiente)"],
    [2, "Servidor local (2 pendientes)"],
    [1250, "Servidor local (1250 pendientes)"],
  ])("says %i pending changes in words", (pending, label) => {
    renderIndicator(makeStatus("local", { pendingChanges: pending }));
    expect(screen.getByRole("status").getAttribute("title")).toBe(label);
  });

  it("spins RefreshCw with 'Sincronizando...' while a sync runs", () => {
    const { container } = renderIndicator(makeStatus("local", { isSyncing: true, pendingChanges: 3 }));
    const status = screen.getByRole("status");
    expect(status.getAttribute("title")).toBe("Sincronizando...");
    expect(status.textContent).toBe("Sincronizando...");
    expect(icon(container)).toContain("lucide-refresh-cw");
    expect(icon(container)).toContain("cv-sync-indicator-spin");
  });

  it("keeps the label for screen readers when it is hidden on screen", () => {
    const status$ = new BehaviorSubject(makeStatus("offline", { pendingChanges: 1 }));
    render(
      <NetworkStatusProvider source={createObservableStatusSource({ status$ })}>
        <SyncIndicator showLabel={false} />
      </NetworkStatusProvider>,
    );
    const label = screen.getByText("Sin conexión (1 pendiente)");
    expect(label.style.position).toBe("absolute");
    expect(screen.getByRole("status").getAttribute("title")).toBe("Sin conexión (1 pendiente)");
  });

  it("announces the fall back to offline once, and clears it when a server answers again", () => {
    const { container, push } = renderIndicator(makeStatus("supabase"));
    const live = container.querySelector('[aria-live="assertive"]');
    expect(live?.textContent).toBe("");
    push(makeStatus("local", { pendingChanges: 1 }));
    expect(live?.textContent).toBe("");
    push(makeStatus("offline", { pendingChanges: 1 }));
    expect(live?.textContent).toBe(OFFLINE_ANNOUNCEMENT);
    push(makeStatus("offline", { pendingChanges: 2 }));
    expect(live?.textContent).toBe(OFFLINE_ANNOUNCEMENT);
    push(makeStatus("local", { pendingChanges: 2 }));
    expect(live?.textContent).toBe("");
  });

  it("does not announce a fall back when the PC starts offline", () => {
    const { container } = renderIndicator(makeStatus("offline"));
    expect(container.querySelector('[aria-live="assertive"]')?.textContent).toBe("");
  });

  it("says it is checking before the first status and when none can be read", () => {
    const status$ = new Subject<ConnectionStatus>();
    const { container } = render(
      <NetworkStatusProvider source={createObservableStatusSource({ status$ })}>
        <SyncIndicator />
      </NetworkStatusProvider>,
    );
    expect(screen.getByRole("status").getAttribute("title")).toBe("Comprobando conexión...");
    act(() => status$.error(new Error("[desktop] backend stopped")));
    expect(screen.getByRole("status").getAttribute("title")).toBe(
      "Sin respuesta del servicio de CentroVision",
    );
    expect(icon(container)).toContain("lucide-wifi-off");
  });
});

function SyncButton() {
  const { triggerSync, isSyncing, syncStatus } = useNetworkStatus();
  return (
    <>
      <SyncIndicator />
      <button type="button" onClick={() => void triggerSync()} disabled={isSyncing}>
        Sincronizar ({syncStatus.pendingChanges})
      </button>
    </>
  );
}

describe("useNetworkStatus().triggerSync", () => {
  it("runs the source's sync and shows the spinner until it has finished", async () => {
    let finish: () => void = () => {};
    const calls: string[] = [];
    const status$ = new BehaviorSubject(makeStatus("local", { pendingChanges: 2 }));
    const source = createObservableStatusSource({
      status$,
      triggerSync: () => {
        calls.push("sync");
        return new Promise<void>((resolve) => {
          finish = resolve;
        });
      },
    });
    render(
      <NetworkStatusProvider source={source}>
        <SyncButton />
      </NetworkStatusProvider>,
    );
    await userEvent.click(screen.getByRole("button", { name: "Sincronizar (2)" }));
    expect(calls).toEqual(["sync"]);
    expect(screen.getByRole("status").getAttribute("title")).toBe("Sincronizando...");
    expect(screen.getByRole("button").hasAttribute("disabled")).toBe(true);
    await act(async () => {
      status$.next(makeStatus("supabase", { pendingChanges: 0 }));
      finish();
    });
    expect(screen.getByRole("status").getAttribute("title")).toBe("Conectado a la nube");
    expect(screen.getByRole("button", { name: "Sincronizar (0)" }).hasAttribute("disabled")).toBe(false);
  });

  it("rejects with a clear error when the source cannot sync", async () => {
    const source = createObservableStatusSource({ status$: new BehaviorSubject(makeStatus("supabase")) });
    await expect(source.triggerSync()).rejects.toMatchObject({
      code: "invalid_config",
      message: expect.stringContaining("pass triggerSync to createObservableStatusSource"),
    });
  });
});

let seen: ReturnType<typeof useNetworkStatus> | undefined;
let raw: ReturnType<typeof useConnectionStatus> | undefined;

function Probe() {
  seen = useNetworkStatus();
  raw = useConnectionStatus();
  return null;
}

describe("useNetworkStatus", () => {
  it("maps the router status to the hook's fields", () => {
    const status$ = new BehaviorSubject(
      makeStatus("local", { pendingChanges: 4, lastSyncAt: "2026-11-30T14:00:00.000Z" }),
    );
    render(
      <NetworkStatusProvider source={createObservableStatusSource({ status$ })}>
        <Probe />
      </NetworkStatusProvider>,
    );
    expect(seen).toMatchObject({
      ready: true,
      isOnline: false,
      connectionMode: "local",
      syncStatus: { pendingChanges: 4, lastSyncAt: "2026-11-30T14:00:00.000Z" },
      isSyncing: false,
      error: null,
    });
  });

  it("refreshStatus reads the router's getStatus; useConnectionStatus gives the whole status", async () => {
    let current = makeStatus("supabase");
    // A stream that never pushes: only refreshStatus can bring the new status in.
    const source = createObservableStatusSource({ status$: new Subject(), getStatus: () => current });
    render(
      <NetworkStatusProvider source={source}>
        <Probe />
      </NetworkStatusProvider>,
    );
    expect(seen?.connectionMode).toBe("supabase");
    current = makeStatus("local", { pinned: "clinic" });
    await act(() => seen?.refreshStatus());
    expect(seen?.connectionMode).toBe("local");
    expect(raw).toEqual({ status: current, error: null });
  });

  it("outside a provider, says which component is missing", () => {
    const quiet = console.error;
    console.error = () => {};
    try {
      expect(() => render(<Probe />)).toThrow(/needs a <NetworkStatusProvider source=/);
    } finally {
      console.error = quiet;
    }
  });
});
