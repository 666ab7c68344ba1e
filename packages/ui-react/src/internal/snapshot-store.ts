import type { ConnectionStatus } from "@centrovision/core/shared";
import type { StatusSnapshot } from "../status-source.js";

export const EMPTY_SNAPSHOT: StatusSnapshot = Object.freeze({ status: null, error: null });

/** Keeps one snapshot and notifies listeners when it is replaced; the shared part of every source. */
export class SnapshotStore {
  private snapshot: StatusSnapshot;
  private readonly listeners = new Set<() => void>();

  constructor(initial: ConnectionStatus | null = null) {
    this.snapshot = initial === null ? EMPTY_SNAPSHOT : Object.freeze({ status: initial, error: null });
  }

  get = (): StatusSnapshot => this.snapshot;

  get size(): number {
    return this.listeners.size;
  }

  add(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  setStatus(status: ConnectionStatus): void {
    this.replace({ status, error: null });
  }

  /** Keeps the last status (the UI still shows where it was working) and records why reading failed. */
  setError(error: Error): void {
    this.replace({ status: this.snapshot.status, error });
  }

  private replace(next: StatusSnapshot): void {
    if (next.status === this.snapshot.status && next.error === this.snapshot.error) return;
    this.snapshot = Object.freeze(next);
    for (const listener of [...this.listeners]) listener();
  }
}
