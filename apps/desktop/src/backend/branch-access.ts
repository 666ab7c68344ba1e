import { CvError, type FailoverRouter, type Row } from "@centrovision/core";

/** What `list_branches` answers: a branch, whether it is this PC's own, and whether it can be worked on now. */
export type BranchView = Row<"branches"> & { home: boolean; available: boolean };

/** The slice of the command context branches need; the key of the last list a server answered. */
export interface BranchContext {
  readonly router: FailoverRouter;
  /** This PC's own branch (`branch_id` in its config): the only one its offline copy holds. */
  readonly homeBranchId: string;
}

/**
 * The last branch list a server answered, per context: offline the PC's copy holds only its own
 * branch, and the others are still shown (as unavailable, with their names), never as missing.
 */
const lastFromServer = new WeakMap<BranchContext, Row<"branches">[]>();

const byName = new Intl.Collator("es", { sensitivity: "base" });

/** Whether calls are served by this PC's offline copy. */
export const onDevice = (router: FailoverRouter) => router.getStatus().mode === "offline";

/**
 * Active branches by name. On a server every one is available; on this PC only its own, and the
 * others come from the last list a server answered (none read yet: the copy's rows alone).
 */
export async function listBranches(ctx: BranchContext): Promise<BranchView[]> {
  const { router, homeBranchId } = ctx;
  const offlineBefore = onDevice(router);
  const rows = await router
    .table("branches")
    .list({ where: { active: true }, orderBy: [{ column: "name" }] });
  // A call begun on a server may have been answered by this PC: only a list read on a server
  // from start to end is kept, or the others would vanish from the offline answer.
  const offline = offlineBefore || onDevice(router);
  if (!offline) lastFromServer.set(ctx, rows);
  const known = new Map((offline ? (lastFromServer.get(ctx) ?? []) : []).map((b) => [b.id, b]));
  for (const row of rows) known.set(row.id, row);
  return [...known.values()]
    .sort((a, b) => byName.compare(a.name, b.name))
    .map((branch) => ({
      ...branch,
      home: branch.id === homeBranchId,
      available: !offline || branch.id === homeBranchId,
    }));
}

/**
 * The branch a command works on. Offline, another branch than this PC's is `unavailable` (its
 * rows are not on this PC), never "does not exist"; a branch no tier knows is `not_found`.
 */
export async function branchFor(ctx: BranchContext, branchId: string): Promise<Row<"branches">> {
  const { router, homeBranchId } = ctx;
  const elsewhere = () => branchId !== homeBranchId && onDevice(router);
  if (elsewhere()) throw await notKeptHere(ctx, branchId);
  const branch = await router.table("branches").get(branchId);
  if (branch !== null) return branch;
  // The call may have failed over to this PC while it ran.
  if (elsewhere()) throw await notKeptHere(ctx, branchId);
  const message = "La sucursal indicada no existe.";
  throw new CvError("not_found", message, { issues: [{ path: "branch_id", message }] });
}

async function notKeptHere(ctx: BranchContext, branchId: string): Promise<CvError> {
  const wanted = lastFromServer.get(ctx)?.find((b) => b.id === branchId)?.name;
  const home = await ctx.router
    .table("branches")
    .get(ctx.homeBranchId)
    .catch(() => null);
  const message =
    `La sucursal ${wanted ?? "elegida"} no está disponible sin conexión: este equipo guarda solo la agenda de ` +
    `${home?.name ?? "su propia sucursal"}. Vuelva a intentarlo cuando regrese la conexión.`;
  return new CvError("unavailable", message, { issues: [{ path: "branch_id", message }] });
}
