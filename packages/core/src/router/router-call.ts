import type { DataSource } from "../data-source.js";
import type { CallOptions } from "../deadline.js";
import type { JournalEntry, UnknownWrite } from "./journal.js";

/*
 * The contract between the failover router and the repositories it hands out: the router
 * implements it, a routed repository calls it. Neither file imports the other.
 */

/** What routed calls need from the router; the repository proxy is written against this. */
export interface RouterCallContext {
  run<T>(
    kind: "read" | "write",
    label: string,
    options: CallOptions | undefined,
    work: RoutedWork<T>,
  ): Promise<T>;
  recordWrite(at: Attempt, entries: readonly Omit<JournalEntry, "at" | "tier">[]): void;
  recordUnknown(at: Attempt, writes: readonly Omit<UnknownWrite, "tier" | "at">[]): void;
}

/** Which tier a routed attempt runs on, and whether an earlier attempt failed. */
export interface Attempt {
  readonly tier: number;
  readonly attempt: number;
  /** How many times the router had forgotten its writes when the call began (`forgetWrites`). */
  readonly forgotten: number;
}

export type RoutedWork<T> = (source: DataSource, options: CallOptions, at: Attempt) => Promise<T>;
