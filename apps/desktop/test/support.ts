import { CvError } from "@centrovision/core";
import type postgres from "postgres";
import { type Demo, onDatabase, waitUntil } from "../src/demo/demo-stack.js";

export { waitUntil as waitFor } from "../src/demo/demo-stack.js";

export interface Reply<T = unknown> {
  status: number;
  body: T;
}

/** `invoke` over the real transport, keeping the status for the assertions. */
export async function call<T = unknown>(demo: Demo, command: string, args: unknown = {}): Promise<Reply<T>> {
  const response = await fetch(`${demo.url}/invoke/${command}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${demo.secret}` },
    body: typeof args === "string" ? args : JSON.stringify(args),
  });
  return { status: response.status, body: (await response.json()) as T };
}

/** Reads the cloud database directly, behind the gateway's and the router's back. */
export function cloudRows<T extends object>(
  demo: Demo,
  query: (sql: postgres.Sql) => Promise<T[]>,
): Promise<T[]> {
  return onDatabase(demo.cloudDbUrl, query);
}

/** The CvError `run` rejects with (anything else is rethrown; resolving fails the test). */
export async function failure(run: () => Promise<unknown>): Promise<CvError> {
  try {
    await run();
  } catch (error) {
    if (error instanceof CvError) return error;
    throw error;
  }
  throw new Error("expected a CvError");
}

/**
 * Waits until the signed-in person holds a clinic session: the cloud hands it out in the
 * background of an online sign-in, and without one the PC never works on the clinic server.
 */
export function clinicSessionHeld(demo: Demo): Promise<void> {
  return waitUntil("the clinic session", async () => {
    const state = demo.session.current();
    return state.signedIn && state.clinicUsable;
  });
}
