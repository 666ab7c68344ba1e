import type { SignedIn } from "./types.js";
import { counted, listed } from "./words.js";

type Waiting = SignedIn["othersUnsent"];

/**
 * Whose offline changes wait on this PC, in one sentence, or null when nobody's: only their own
 * session sends them (or settles those a server refused, in Conflictos), so the person to ask is
 * named ("otra persona" when this one may not read their profile).
 */
export function othersUnsentWords(others: Waiting): string | null {
  const [only] = others;
  if (only === undefined) return null;
  const name = (who: string | null) => who ?? "otra persona";
  if (others.length === 1) {
    const { changes, refused } = only;
    const who = name(only.name);
    if (refused === 0) {
      return changes === 1
        ? `En este equipo espera 1 cambio de ${who} hecho sin conexión: se enviará cuando esa persona vuelva a iniciar sesión aquí.`
        : `En este equipo esperan ${changes} cambios de ${who} hechos sin conexión: se enviarán cuando esa persona vuelva a iniciar sesión aquí.`;
    }
    if (changes === 0) {
      return refused === 1
        ? `En este equipo espera 1 cambio de ${who} que el servidor rechazó: esa persona debe revisarlo en Conflictos al volver a iniciar sesión aquí.`
        : `En este equipo esperan ${refused} cambios de ${who} que el servidor rechazó: esa persona debe revisarlos en Conflictos al volver a iniciar sesión aquí.`;
    }
    return `En este equipo esperan ${counted(changes, "cambio hecho", "cambios hechos")} sin conexión por ${who} y ${counted(refused, "rechazado", "rechazados")} por el servidor: se enviarán o se revisarán en Conflictos cuando esa persona vuelva a iniciar sesión aquí.`;
  }
  const each = others.map(({ name: who, changes, refused }) => {
    const parts = [
      ...(changes > 0 ? [counted(changes, "sin enviar", "sin enviar")] : []),
      ...(refused > 0 ? [counted(refused, "rechazado", "rechazados")] : []),
    ];
    return `${name(who)} (${parts.join(", ")})`;
  });
  const sent = others.some((other) => other.changes > 0);
  const reviewed = others.some((other) => other.refused > 0);
  const then =
    sent && reviewed
      ? "se enviarán, o se revisarán en Conflictos,"
      : sent
        ? "se enviarán"
        : "se revisarán en Conflictos";
  return `En este equipo esperan cambios hechos sin conexión de ${listed(each)}: ${then} cuando cada persona vuelva a iniciar sesión aquí.`;
}

/** The banner saying so, while there are any. */
export function OthersUnsent({ others }: { readonly others: Waiting }) {
  const words = othersUnsentWords(others);
  if (words === null) return null;
  return (
    <div className="banner" role="status" data-testid="others-unsent">
      {words}
    </div>
  );
}
