import * as z from "zod";
import type { OfflineStore } from "./offline-store.js";

const isStore = (value: unknown): value is OfflineStore =>
  typeof value === "object" &&
  value !== null &&
  typeof (value as OfflineStore).batch === "function" &&
  typeof (value as OfflineStore).records === "function" &&
  typeof (value as OfflineStore).table === "function";

/** What this PC keeps for working offline. Every bound is a row count the copy cannot exceed. */
export const offlineScopeSchema = z
  .object({
    /** The PC's branch: its rooms, staff, agenda. */
    branchId: z.guid(),
    /** Appointments from 24 h ago (today, in any time zone) to this many days ahead. */
    daysAhead: z.int().min(0).max(60).default(7),
    /** At most this many appointments (the nearest first); their patients follow. */
    maxAppointments: z.int().positive().default(3_000),
    /** Encounters (with their exams and diagnoses) of those patients started within this many days. */
    encounterDays: z.int().min(0).max(3_650).default(365),
    /** At most this many encounters (the latest first). */
    maxEncounters: z.int().positive().default(10_000),
  })
  .strict();

export const offlineTierOptionsSchema = z
  .object({
    /** The PC's encrypted SQLite source (`createSqliteSource`), owned by the tier from now on. */
    store: z.custom<OfflineStore>(isStore, "must be a SqliteSource (createSqliteSource)"),
    scope: offlineScopeSchema,
    /** Source id the router and the status show. */
    id: z.string().min(1).default("offline"),
    /**
     * How far back an incremental refresh re-reads before the newest `updated_at` it holds: a row
     * stamped before that but committed after the last refresh (a long transaction) is not missed.
     */
    overlapMs: z.int().nonnegative().default(300_000),
    /** Rows per page when refreshing; ids per `in` list. */
    pageSize: z.int().min(10).max(10_000).default(1_000),
    /** Outbox entries per apply call when draining. */
    drainBatchSize: z.int().min(1).max(5_000).default(500),
    /**
     * How many drains an entry whose parent row the server lacks waits (the server may be a few
     * seconds behind the cloud) before it goes to the dead-letter list.
     */
    parentWaits: z.int().nonnegative().default(5),
    /** Clock, for tests. */
    now: z.custom<() => Date>((v) => typeof v === "function").default(() => () => new Date()),
  })
  .strict();

export type OfflineScope = z.input<typeof offlineScopeSchema>;
export type OfflineTierOptions = z.input<typeof offlineTierOptionsSchema>;
export type OfflineTierConfig = z.output<typeof offlineTierOptionsSchema>;
