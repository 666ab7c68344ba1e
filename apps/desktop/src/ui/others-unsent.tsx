import type { SignedIn } from "./types.js";

type Waiting = SignedIn["othersUnsent"];

/**
 * Whose offline changes wait on this PC, in one sentence, or null when nobody's: only their own
 * session sends them, so the person to ask is named (or "otra persona" when this one may not read
 * their profile).
 */
export function othersUnsentWords(others: Waiting): string | null {
  const [only] = others;
  if (only === undefined) return null;
  const name = (who: string | null) => who ?? "otra persona";
  if (others.length === 1) {
    return only.changes === 1
      ? `En este equipo espera 1 cambio de ${name(only.name)} hecho sin conexión: se enviará cuando esa persona vuelva a iniciar sesión aquí.`
      : `En este equipo esperan ${only.changes} cambios de ${name(only.name)} hechos sin conexión: se enviarán cuando esa persona vuelva a iniciar sesión aquí.`;
  }
  const each = others.map((other) => `${name(other.name)} (${other.changes})`);
  return `En este equipo esperan cambios hechos sin conexión de ${each.slice(0, -1).join(", ")} y ${each.at(-1)}: se enviarán cuando cada persona vuelva a iniciar sesión aquí.`;
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
