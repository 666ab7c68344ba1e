import { useNetworkStatus } from "@centrovision/ui-react";
import { useCallback, useEffect, useRef, useState } from "react";
import { errorText, invoke } from "./invoke.js";
import type { AgendaItem, Staff } from "./types.js";

/** How often the day is re-read: other PCs book and check patients in too. */
const REFRESH_MS = 5_000;

interface Answer<T> {
  /** The request the answer belongs to (`branch|date`): an answer is shown only under its own heading. */
  readonly key: string;
  readonly value: T | null;
  readonly error: string | null;
}

export interface Loaded<T> {
  /** Null while the current request has no answer yet (never the previous request's rows). */
  readonly value: T | null;
  readonly error: string | null;
  /** Reads again now. */
  readonly reload: () => Promise<void>;
}

/**
 * Calls `command` for `key`, again every `refreshMs` (if given), after `version` changes and
 * whenever the connection mode changes (the agenda must follow the tier it is read from). Only the
 * answer of the latest call is kept: a slow answer for an older branch or day is dropped, and what
 * is returned belongs to `key` or is null.
 */
function useKeyedLoad<T>(
  key: string,
  command: string,
  args: Record<string, unknown>,
  options: { version?: number; refreshMs?: number },
): Loaded<T> {
  const { connectionMode } = useNetworkStatus();
  const [answer, setAnswer] = useState<Answer<T> | null>(null);
  const latest = useRef(0);
  const argsJson = JSON.stringify(args);

  const reload = useCallback(async () => {
    const call = ++latest.current;
    try {
      const value = await invoke<T>(command, JSON.parse(argsJson) as Record<string, unknown>);
      if (call === latest.current) setAnswer({ key, value, error: null });
    } catch (e) {
      // A failed re-read keeps the rows already shown for this key, with the error above them.
      if (call === latest.current) {
        setAnswer((previous) => ({
          key,
          value: previous?.key === key ? previous.value : null,
          error: errorText(e),
        }));
      }
    }
  }, [key, command, argsJson]);

  const { version, refreshMs } = options;
  useEffect(() => {
    void version;
    void connectionMode;
    void reload();
    if (refreshMs === undefined) return;
    const timer = setInterval(() => void reload(), refreshMs);
    return () => clearInterval(timer);
  }, [reload, version, refreshMs, connectionMode]);

  const current = answer?.key === key ? answer : null;
  return { value: current?.value ?? null, error: current?.error ?? null, reload };
}

/** The day's appointments of a branch (`get_appointments`), re-read every 5 s and on every mode change. */
export function useDayAgenda(branchId: string, date: string, version: number): Loaded<AgendaItem[]> {
  return useKeyedLoad<AgendaItem[]>(
    `${branchId}|${date}`,
    "get_appointments",
    { branch_id: branchId, date },
    { version, refreshMs: REFRESH_MS },
  );
}

/** The branch's doctors and rooms (`list_staff`), re-read on every mode change. */
export function useStaff(branchId: string): Loaded<Staff> {
  return useKeyedLoad<Staff>(branchId, "list_staff", { branch_id: branchId }, {});
}

/** The current time, updated every `everyMs` (the minutes a patient has waited). */
export function useNow(everyMs = 30_000): Date {
  const [now, setNow] = useState(() => new Date());
  useEffect(() => {
    const timer = setInterval(() => setNow(new Date()), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
  return now;
}
