import { randomUUID } from "node:crypto";
import type { SqliteSource } from "@centrovision/adapter-sqlite";
import { type ConnectionStatus, CvError, type FailoverRouter } from "@centrovision/core";
import type { AuditTrailEvent, ClientApplier } from "@centrovision/offline";
import type { AuditQuery } from "@centrovision/sync-engine";
import { exhaustMap, merge, type Observable, type Subscription, timer } from "rxjs";
import type { UsableTiers } from "./tier-gate.js";

/** Openings of a record made while no server could take them, kept in the PC's encrypted file. */
const OPENINGS = "cv-openings";

interface HeldOpening {
  readonly patientId: string;
  readonly userId: string;
  readonly openedAt: string;
}

/**
 * The audit trail as the PC sees it (sql/0012): every opening of a patient's record is recorded,
 * in the person's name, on the server the PC works on; while none answers it is kept in the PC's
 * encrypted file with the time it happened and handed over once one does. An administrator reads
 * the trail of their patients from the server the PC works on.
 */
export interface PatientAudit {
  /** Records that `userId` (signed in now) opened `patientId`: on the server, or kept here. */
  opened(patientId: string, userId: string): Promise<"recorded" | "held">;
  /** The administrator's trail, from the server the PC works on; `unavailable` offline. */
  trail(query: AuditQuery): Promise<AuditTrailEvent[]>;
  /**
   * Hands the openings kept on this PC for the person signed in (`signedIn()`) to the server the
   * PC works on, oldest first: every `intervalMs` and on every status. One the server refuses for
   * good (the person no longer sees that patient) is dropped and reported to `onError`, without
   * ids. Unsubscribe to stop.
   */
  autoDeliver(
    status$: Observable<ConnectionStatus>,
    signedIn: () => string | null,
    options: { intervalMs: number; onError: (error: CvError) => void },
  ): Subscription;
}

export interface PatientAuditOptions {
  router: Pick<FailoverRouter, "getStatus">;
  /** The PC's encrypted file: its records hold the openings no server took yet. */
  store: Pick<SqliteSource, "batch" | "records">;
  servers: { readonly cloud: ClientApplier; readonly clinic?: ClientApplier };
  /** Whether the tier may be used for the signed-in person now (their session there is good). */
  usable: () => UsableTiers;
}

const asCv = (error: unknown) =>
  error instanceof CvError ? error : new CvError("unknown", "[desktop] audit call failed", { cause: error });

export function createPatientAudit(options: PatientAuditOptions): PatientAudit {
  const { router, store, servers } = options;

  /** The server the PC works on now, if it may be used for the person. */
  const serving = (): ClientApplier | undefined => {
    const { mode } = router.getStatus();
    const usable = options.usable();
    if (mode === "supabase" && usable.cloud) return servers.cloud;
    if (mode === "local" && usable.clinic) return servers.clinic;
    return undefined;
  };

  const hold = async (opening: HeldOpening) => {
    await store.batch((batch) => batch.setRecord(OPENINGS, randomUUID(), opening));
  };

  /** Hands over `userId`'s kept openings; how many the server refused for good (dropped). */
  const deliver = async (userId: string): Promise<number> => {
    const all = await store.records<HeldOpening>(OPENINGS);
    let dropped = 0;
    for (const { key, value } of all.filter((record) => record.value.userId === userId)) {
      const server = serving();
      if (server === undefined) break;
      try {
        await server.recordOpened(value.patientId, new Date(value.openedAt));
      } catch (error) {
        if (!(error instanceof CvError && error.code === "unauthorized")) throw error;
        dropped++;
      }
      await store.batch((batch) => batch.setRecord(OPENINGS, key, null));
    }
    return dropped;
  };

  return {
    async opened(patientId, userId) {
      const openedAt = new Date();
      const server = serving();
      if (server !== undefined) {
        try {
          await server.recordOpened(patientId, openedAt);
          return "recorded";
        } catch (error) {
          // Refused for this person (they may not see the patient there): no record is shown.
          if (error instanceof CvError && error.code === "unauthorized") throw error;
        }
      }
      await hold({ patientId, userId, openedAt: openedAt.toISOString() });
      return "held";
    },
    async trail(query) {
      const server = serving();
      if (server === undefined) {
        throw new CvError(
          "unavailable",
          "La bitácora se consulta en la nube o en el servidor de la clínica; sin conexión con ellos no está disponible.",
        );
      }
      try {
        return await server.auditTrail(query);
      } catch (error) {
        if (error instanceof CvError && error.code === "unauthorized") {
          throw new CvError(
            "unauthorized",
            "Solo un administrador de la clínica puede consultar la bitácora.",
          );
        }
        throw error;
      }
    },
    autoDeliver(status$, signedIn, { intervalMs, onError }) {
      // exhaustMap: runs never overlap (two would hand over the same openings twice).
      return merge(timer(0, intervalMs), status$)
        .pipe(
          exhaustMap(async () => {
            const userId = signedIn();
            if (userId === null || serving() === undefined) return;
            try {
              const dropped = await deliver(userId);
              if (dropped > 0) {
                onError(
                  new CvError(
                    "unauthorized",
                    `[desktop] the server refused ${dropped} opening(s) of a record kept on this PC (the person no longer sees those patients); dropped`,
                  ),
                );
              }
            } catch (error) {
              onError(asCv(error));
            }
          }),
        )
        .subscribe();
    },
  };
}
