import type { ConnectionMode } from "@centrovision/core";

/** The tiers and sources as the router names them (`stack.ts`' ids), in the words the panel uses. */
const PLACES: Record<string, string> = {
  cloud: "la nube",
  clinic: "el servidor de la clínica",
  device: "este equipo",
  offline: "este equipo",
  Supabase: "la nube (Supabase)",
};

export const MODE_WORDS: Record<ConnectionMode, string> = {
  supabase: "nube",
  local: "servidor de la clínica",
  offline: "este equipo (sin conexión)",
};

const place = (id: string): string => PLACES[id] ?? id;

/** Core's error codes, which a tier's last error starts with (`timeout: …`). */
const CODES: Record<string, string> = {
  unavailable: "no disponible",
  timeout: "tiempo agotado",
  not_found: "no encontrado",
  conflict: "conflicto",
  constraint: "restricción",
  invalid_input: "datos inválidos",
  invalid_config: "configuración inválida",
  unauthorized: "sin autorización",
  unknown: "error desconocido",
};

/**
 * English phrases of the router and the adapters, in Spanish. Ordered: the first that matches is
 * used (a translation may decline with null), and the parts it keeps are translated again, so
 * nested causes read in Spanish too.
 */
const PHRASES: readonly [RegExp, (m: RegExpMatchArray, again: (text: string) => string) => string | null][] =
  [
    [
      /^(\w+): (.*)$/s,
      (m, again) => ((m[1] ?? "") in CODES ? `${CODES[m[1] ?? ""]}: ${again(m[2] ?? "")}` : null),
    ],
    [/^unknown$/, () => "error desconocido"],
    [/^starting: checking every tier$/, () => "arrancando: comprobando cada nivel"],
    [
      /^([\w-]+) stopped answering \((.*)\)$/s,
      (m, again) => `${place(m[1] ?? "")} dejó de responder (${again(m[2] ?? "")})`,
    ],
    [/^([\w-]+) stopped answering$/, (m) => `${place(m[1] ?? "")} dejó de responder`],
    [
      /^([\w-]+) answers again; waiting for (\d+) pending changes to reach it first$/,
      (m) =>
        `${place(m[1] ?? "")} responde de nuevo; esperando a que le lleguen primero ${m[2]} cambios pendientes`,
    ],
    [
      /^([\w-]+) answers again; waiting to learn how many changes are still pending$/,
      (m) => `${place(m[1] ?? "")} responde de nuevo; averiguando cuántos cambios siguen pendientes`,
    ],
    [/^([\w-]+) answers again$/, (m) => `${place(m[1] ?? "")} responde de nuevo`],
    [
      /^the link is unstable \((\d+) switches in (\d+) min\): staying on ([\w-]+) for (\d+) min$/,
      (m) =>
        `la conexión es inestable (${m[1]} cambios en ${m[2]} min): se queda en ${place(m[3] ?? "")} durante ${m[4]} min`,
    ],
    [/^no answer$/, () => "sin respuesta"],
    [/^not configured on this PC$/, () => "no está configurado en este equipo"],
    [/^(.*) timed out after (\d+) ms$/s, (m, again) => `${again(m[1] ?? "")}: sin respuesta en ${m[2]} ms`],
    [/^probe$/, () => "comprobación"],
    [
      /^cannot reach the clinic server at (\S+) \((.*)\)$/s,
      (m, again) => `no se puede contactar el servidor de la clínica en ${m[1]} (${again(m[2] ?? "")})`,
    ],
    [
      /^cannot reach Supabase at (\S+) \((.*)\)$/s,
      (m, again) => `no se puede contactar la nube en ${m[1]} (${again(m[2] ?? "")})`,
    ],
    [/^cannot reach (.*) \((.*)\)$/s, (m, again) => `no se puede contactar ${m[1]} (${again(m[2] ?? "")})`],
    [/^connection refused$/, () => "conexión rechazada"],
    [/^host not found$/, () => "servidor no encontrado"],
    [/^DNS lookup failed$/, () => "falló la búsqueda DNS"],
    [/^(host|network) unreachable$/, () => "red inalcanzable"],
    [/^connection (reset|aborted|broken)$/, () => "conexión interrumpida"],
    [/^TCP timeout$/, () => "tiempo de espera TCP agotado"],
    [/^the server closed the connection$|^the connection was closed$/, () => "el servidor cerró la conexión"],
    [
      /^the connection was dropped while the call was in flight$/,
      () => "la conexión se cortó durante la llamada",
    ],
    [
      /^the server is (shutting down|starting up or shutting down)$/,
      () => "el servidor se está apagando o arrancando",
    ],
    [/^the server crashed$/, () => "el servidor se cayó"],
    [/^the server has no free connection slot$/, () => "el servidor no tiene conexiones libres"],
    [/^(.*) was cancelled by the caller$/s, (m, again) => `${again(m[1] ?? "")}: cancelado`],
    [/^source ([\w-]+) is closed$/, (m) => `la fuente ${place(m[1] ?? "")} está cerrada`],
    [/^fetch failed$/, () => "falló la petición"],
  ];

/** `[adapter-postgres] `, `[core] `…: the package tags in a message, for developers' logs, not for this panel. */
const TAG = /\[[a-z0-9@/_-]+\]\s*/gi;

/**
 * A router reason or a tier's last error in Spanish, without the internal package tags; the
 * error code in front (`timeout: …`) in Spanish words too. A phrase not known here is kept as it
 * is, so no detail is lost.
 */
export function statusWords(text: string): string {
  const again = (part: string): string => {
    const clean = part.replace(TAG, "").trim();
    for (const [pattern, translate] of PHRASES) {
      const match = clean.match(pattern);
      const words = match === null ? null : translate(match, again);
      if (words !== null) return words;
    }
    return clean;
  };
  return again(text);
}
