/** One field's problem in an `invalid_input` answer: the argument's name and a Spanish message. */
export interface InvokeIssue {
  readonly path: string;
  readonly message: string;
}

/**
 * What a failed command carries: a stable code to match on, a Spanish message to show and, for
 * `invalid_input`, every field's problem at once (empty otherwise).
 */
export class InvokeError extends Error {
  override readonly name = "InvokeError";
  constructor(
    readonly code: string,
    message: string,
    readonly issues: readonly InvokeIssue[] = [],
  ) {
    super(message);
  }
}

const KEY = "centrovision.acceso";

/**
 * This launch's secret, which the backend asks of every call: handed to this page in the fragment
 * of its address (`#acceso=…`, never sent to a server), kept for the tab (a reload keeps working)
 * and taken out of the address bar, so it is neither bookmarked nor shown.
 */
function takeSecret(): string | null {
  const given = new URLSearchParams(location.hash.slice(1)).get("acceso");
  if (given !== null) {
    sessionStorage.setItem(KEY, given);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY);
}

const SECRET = takeSecret();

const headers = (json: boolean): Record<string, string> => ({
  ...(json && { "content-type": "application/json" }),
  ...(SECRET !== null && { authorization: `Bearer ${SECRET}` }),
});

/**
 * Shaped like `@tauri-apps/api/core`'s `invoke(command, args)`: today an HTTP POST to the backend
 * on this PC, later Tauri's own function without changing a caller.
 */
export async function invoke<T = unknown>(command: string, args: Record<string, unknown> = {}): Promise<T> {
  if (SECRET === null) {
    throw new InvokeError(
      "unauthorized",
      "Abra CentroVision desde su acceso directo: la dirección lleva la clave de esta sesión del equipo.",
    );
  }
  let response: Response;
  try {
    response = await fetch(`./invoke/${command}`, {
      method: "POST",
      headers: headers(true),
      body: JSON.stringify(args),
    });
  } catch {
    throw new InvokeError("unavailable", "No se pudo contactar el servicio de CentroVision en este equipo.");
  }
  const body = (await response.json().catch(() => null)) as {
    code?: string;
    message?: string;
    issues?: InvokeIssue[];
  } | null;
  if (!response.ok) {
    throw new InvokeError(
      body?.code ?? "unknown",
      body?.message ?? "Ocurrió un error inesperado.",
      Array.isArray(body?.issues) ? body.issues : [],
    );
  }
  return body as T;
}

/** The demo's switches (`/demo/...`), present only when the backend runs in demo mode. */
export async function demoControl(path: string): Promise<unknown> {
  const post = path !== "state";
  const response = await fetch(`./demo/${path}`, {
    method: post ? "POST" : "GET",
    headers: headers(post),
    ...(post && { body: "{}" }),
  });
  if (!response.ok) throw new InvokeError("not_found", "Modo demostración no disponible.");
  return response.json();
}

export const errorText = (error: unknown): string =>
  error instanceof Error ? error.message : "Ocurrió un error inesperado.";

/** The code of a failed command, to match on (`conflict`, `invalid_input`, …); `unknown` for anything else. */
export const errorCode = (error: unknown): string => (error instanceof InvokeError ? error.code : "unknown");
