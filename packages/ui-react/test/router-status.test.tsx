import {
  CvError,
  createFailoverRouter,
  createMemorySource,
  type DataSource,
  type FailoverRouter,
} from "@centrovision/core";
import { render, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { createObservableStatusSource, NetworkStatusProvider, SyncIndicator } from "../src/index.js";

/** A memory tier whose probes can be made to fail the way a refused connection does. */
function switchableTier(id: string): DataSource & { down: boolean } {
  const inner = createMemorySource({ id });
  const tier = {
    id,
    kind: inner.kind,
    capabilities: inner.capabilities,
    down: false,
    probe: () =>
      tier.down
        ? Promise.reject(new CvError("unavailable", `[test] ${id} refused the connection`))
        : inner.probe(),
    table: inner.table.bind(inner),
    close: () => inner.close(),
  };
  return tier;
}

let router: FailoverRouter | undefined;

afterEach(async () => {
  await router?.close();
});

describe("with the failover router in the same process", () => {
  it("follows router.status$ from the cloud down to this PC's file", async () => {
    const cloud = switchableTier("cloud");
    const clinic = switchableTier("clinic");
    const device = switchableTier("device");
    router = createFailoverRouter({
      sources: [cloud, clinic, device],
      hooks: { pendingChanges: async (tier) => (tier === "cloud" ? 0 : 3) },
      config: {
        probeIntervalMs: 20,
        suspectIntervalMs: 10,
        downIntervalMs: 20,
        probeTimeoutMs: 500,
        fall: 2,
      },
    });
    const active = router;
    const source = createObservableStatusSource({
      status$: active.status$,
      getStatus: () => active.getStatus(),
    });
    render(
      <NetworkStatusProvider source={source}>
        <SyncIndicator />
      </NetworkStatusProvider>,
    );
    const title = () => screen.getByRole("status").getAttribute("title");

    await waitFor(() => expect(title()).toBe("Conectado a la nube"), { timeout: 10_000 });
    cloud.down = true;
    await waitFor(() => expect(title()).toBe("Servidor local (3 pendientes)"), { timeout: 10_000 });
    clinic.down = true;
    await waitFor(() => expect(title()).toBe("Sin conexión (3 pendientes)"), { timeout: 10_000 });
    expect(document.querySelector('[aria-live="assertive"]')?.textContent).toMatch(
      /^Sin conexión a internet/,
    );
  });
});
