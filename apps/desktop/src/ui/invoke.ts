/** What a failed command carries: a stable code to match on and a Spanish message to show. */
export class InvokeError extends Error {
  override readonly name = "InvokeError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Shaped like `@tauri-apps/api/core`'s `invoke(command, args)`: today an HTTP POST to the backend
 * on this PC, later Tauri's own function without changing a caller.
 */
export async function invoke<T = unknown>(command: string, args: Record<string, unknown> = {}): Promise<T> {
  let response: Response;
  try {
    response = await fetch(`./invoke/${command}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(args),
    });
  } catch {
    throw new InvokeError("unavailable", "No se pudo contactar el servicio de CentroVision en este equipo.");
  }
  const body = (await response.json().catch(() => null)) as { code?: string; message?: string } | null;
  if (!response.ok) {
    throw new InvokeError(body?.code ?? "unknown", body?.message ?? "Ocurrió un error inesperado.");
  }
  return body as T;
}

/** The demo's switches (`/demo/...`), present only when the backend runs in demo mode. */
export async function demoControl(path: string): Promise<unknown> {
  const response = await fetch(`./demo/${path}`, { method: path === "state" ? "GET" : "POST" });
  if (!response.ok) throw new InvokeError("not_found", "Modo demostración no disponible.");
  return response.json();
}

export const errorText = (error: unknown): string =>
  error instanceof Error ? error.message : "Ocurrió un error inesperado.";
