import {
  type CallOptions,
  CvError,
  type DataSource,
  type ListQuery,
  TABLE_NAMES,
  type TableName,
  tables,
  type Where,
} from "@centrovision/core";
import {
  type AnyRow,
  applyCap,
  chunks,
  SCOPE_STEPS,
  type ScopeStep,
  type ScopeWindow,
  scopeWindow,
  valuesOf,
} from "./cache-scope.js";
import type { OfflineTierConfig } from "./offline-options.js";
import type { OfflineStore, StoreBatch } from "./offline-store.js";
import {
  CLAIMING,
  COPY_OWNER,
  copyOwner,
  DEAD_LETTERS,
  entryKey,
  HELD_ROWS,
  type HeldRow,
  handedOver,
  heldRowKey,
  OUTBOX,
  type OutboxEntry,
  ownEntries,
} from "./outbox.js";

const CACHE_STATE = "cv-cache-state";
/** Rows per local batch (one journal record each) when copying or evicting. */
const WRITE_BATCH = 500;

/** Per table: what the last refresh asked for, and the newest `updated_at` it received. */
interface TableState {
  readonly query: string;
  readonly watermark: string | null;
  /** Rows the last refresh received and could not place, asked for again by id (at most `RETRY_IDS`). */
  readonly unplaced?: readonly string[];
}

/** Unplaced rows per table a refresh asks for again; beyond, they come back when they change. */
const RETRY_IDS = 1_000;

/** What one refresh did; counts only, never rows. */
export interface RefreshReport {
  readonly full: boolean;
  /** Rows received from the tier, in all and per table. */
  readonly fetched: number;
  readonly fetchedByTable: Readonly<Record<TableName, number>>;
  /** Rows written to the local copy (new or changed). */
  readonly written: number;
  /** Rows removed because they left the scope. */
  readonly evicted: number;
  /**
   * Rows the tier returned that the copy cannot take: a unique key of theirs (a document number, a
   * room's name) is held here by a row with the owner's unsent edit, or by one the tier no longer
   * returns (the refresh evicts it); or a parent they need is such a row, or one the tier does not
   * show this person (a patient registered at another branch, whose branch row the policies keep
   * from them: the copy holds no row without its parents). The next refresh asks for them again.
   */
  readonly unplaced: number;
  /** Rows per table in the local copy afterwards. */
  readonly rows: Readonly<Record<TableName, number>>;
}

type Kept = Map<TableName, Map<string, AnyRow>>;

async function listAll(
  source: DataSource,
  table: TableName,
  query: ListQuery<Record<string, unknown>>,
  pageSize: number,
  options: CallOptions | undefined,
): Promise<AnyRow[]> {
  const repo = source.table(table);
  if (query.limit !== undefined) return (await repo.list(query as never, options)) as AnyRow[];
  const rows: AnyRow[] = [];
  for (let offset = 0; ; offset += pageSize) {
    const page = (await repo.list({ ...query, limit: pageSize, offset } as never, options)) as AnyRow[];
    rows.push(...page);
    if (page.length < pageSize) return rows;
  }
}

/** Rows of `step` whose selecting column is in `ids`, fetched in `in`-lists of `pageSize`. */
async function listByIds(
  source: DataSource,
  step: Extract<ScopeStep, { kind: "ids" }>,
  ids: readonly string[],
  extra: Where<Record<string, unknown>>,
  pageSize: number,
  options: CallOptions | undefined,
): Promise<AnyRow[]> {
  const rows: AnyRow[] = [];
  for (const chunk of chunks(ids, pageSize)) {
    rows.push(
      ...(await listAll(
        source,
        step.table,
        { where: { ...extra, [step.column]: { in: chunk } } },
        pageSize,
        options,
      )),
    );
  }
  return rows;
}

/** The rows of one step as `source` holds them now, given the rows of the earlier steps. */
async function stepRows(
  source: DataSource,
  step: ScopeStep,
  selected: ReadonlyMap<TableName, AnyRow[]>,
  config: OfflineTierConfig,
  window: ScopeWindow,
  options: CallOptions | undefined,
): Promise<AnyRow[]> {
  if (step.kind === "where") {
    return listAll(source, step.table, step.query(config.scope, window), config.pageSize, options);
  }
  const ids = valuesOf(selected.get(step.input) ?? [], step.inputColumn);
  const rows = await listByIds(
    source,
    step,
    ids,
    step.where?.(config.scope, window) ?? {},
    config.pageSize,
    options,
  );
  return applyCap(rows, step.cap, config.scope);
}

/** Every step's rows as `source` holds them: what the scope selects there. */
async function selectScope(
  source: DataSource,
  config: OfflineTierConfig,
  window: ScopeWindow,
  options: CallOptions | undefined,
): Promise<Map<TableName, AnyRow[]>> {
  const selected = new Map<TableName, AnyRow[]>();
  for (const step of SCOPE_STEPS) {
    selected.set(step.table, await stepRows(source, step, selected, config, window, options));
  }
  return selected;
}

const newest = (rows: readonly AnyRow[], start: string | null) =>
  rows.reduce<string | null>(
    (max, row) => (max === null || row.updated_at > max ? row.updated_at : max),
    start,
  );

/** Where rows come from and what must not be overwritten, for one refresh. */
interface CopyContext {
  readonly store: OfflineStore;
  readonly from: DataSource;
  /** `table:id` of rows with the owner's pending or dead-lettered local edits. */
  readonly held: ReadonlySet<string>;
  /** `table:id` of rows stored since the refresh began by another path (the router's carry): newer than what it read. */
  readonly newer: () => ReadonlySet<string>;
  /** False once another person began to claim the copy: what this refresh read is not theirs. */
  readonly stillTheirs: () => boolean;
  readonly pageSize: number;
  readonly options: CallOptions | undefined;
  /** Per table, the ids of rows received and not placed (see `RefreshReport.unplaced`). */
  readonly unplaced: Map<TableName, Set<string>>;
}

const leaveUnplaced = (context: CopyContext, table: TableName, row: AnyRow) => {
  context.unplaced.set(table, (context.unplaced.get(table) ?? new Set<string>()).add(row.id));
};

/**
 * Of `ids` (rows of `table`), those no row with the owner's unsent edit references: deleting one
 * of the others would change that edit through its ON DELETE rule.
 */
async function unreferencedByEdits(
  context: CopyContext,
  table: TableName,
  ids: readonly string[],
): Promise<string[]> {
  const left = new Set(ids);
  for (const child of TABLE_NAMES) {
    for (const fk of tables[child].foreignKeys) {
      if (fk.references !== table) continue;
      for (const chunk of chunks([...left], context.pageSize)) {
        const rows = (await context.store
          .table(child)
          .list({ where: { [fk.column]: { in: chunk } } } as never, context.options)) as AnyRow[];
        for (const row of rows)
          if (context.held.has(`${child}:${row.id}`)) left.delete(row[fk.column] as string);
      }
    }
  }
  return [...left];
}

/** Deletes a row from the copy verbatim, unless a row kept here references it (restrict). */
function deleteUnlessNeeded(batch: StoreBatch, table: TableName, id: string): void {
  try {
    batch.deleteVerbatim(table, id);
  } catch (error) {
    if (!(error instanceof CvError) || error.code !== "constraint") throw error;
  }
}

/**
 * Copies rows into the local file verbatim (their versions and stamps kept), in batches, after
 * the parents they reference that the file lacks (a doctor of another branch, a past appointment
 * of a recent encounter). Rows with pending or dead-lettered local edits are left alone: the PC's
 * version wins locally until a server took it. Rows already held at that version are not rewritten.
 * A unique key that moved between rows (a swap) is placed, also across batches, and from a row
 * the tier holds with another key now (read again for it); a row whose key a row with the owner's
 * edit or one the tier no longer returns holds, or whose parent could not be placed, is left out.
 */
async function copyRows(context: CopyContext, table: TableName, rows: readonly AnyRow[]): Promise<number> {
  const { store, from, held, pageSize, options } = context;
  const parents = await copyMissingParents(context, table, rows);
  const orphan = (row: AnyRow) =>
    tables[table].foreignKeys.some((fk) => parents.lacking.get(fk.references)?.has(row[fk.column] as string));
  // A row with the owner's edit is not written anyway: not one left out.
  for (const row of rows)
    if (orphan(row) && !held.has(`${table}:${row.id}`)) leaveUnplaced(context, table, row);
  const place = (batch: StoreBatch, candidates: readonly AnyRow[]) => {
    if (!context.stillTheirs()) throw handedOver("the copy's refresh");
    const newer = context.newer();
    const fresh = candidates.filter((row) => {
      const key = `${table}:${row.id}`;
      return !held.has(key) && !newer.has(key) && batch.get(table, row.id)?.version !== row.version;
    });
    const left = new Map(batch.putVerbatimSet(table, fresh as never).map((row) => [row.id, row.heldBy]));
    return {
      written: fresh.length - left.size,
      left: fresh.filter((row) => left.has(row.id)),
      holders: [...left.values()].filter((id): id is string => id !== null),
    };
  };
  let written = parents.written;
  const blocked: AnyRow[] = [];
  const holders = new Set<string>();
  for (const chunk of chunks(
    rows.filter((row) => !orphan(row)),
    WRITE_BATCH,
  )) {
    written += await store.batch((batch) => {
      const done = place(batch, chunk);
      blocked.push(...done.left);
      for (const id of done.holders) holders.add(id);
      return done.written;
    }, options);
  }
  if (blocked.length === 0) return written;
  // Together, the rows a key held elsewhere left, with the tier's rows that hold those keys here
  // and are not among `rows` (a key moved to a row of another batch, or of another step).
  const ours = new Set(rows.map((row) => row.id));
  const asked = [...holders].filter((id) => !ours.has(id) && !held.has(`${table}:${id}`));
  const moved: AnyRow[] = [];
  for (const chunk of chunks(asked, pageSize)) {
    moved.push(
      ...((await from.table(table).list({ where: { id: { in: chunk } } } as never, options)) as AnyRow[]),
    );
  }
  const returned = new Set(moved.map((row) => row.id));
  const gone = await unreferencedByEdits(
    context,
    table,
    asked.filter((id) => !returned.has(id)),
  );
  written += await store.batch((batch) => {
    if (!context.stillTheirs()) throw handedOver("the copy's refresh");
    // A holder the tier no longer returns (gone there, or no longer shown to this person) leaves
    // the copy, unless a row kept here still needs it (restrict): it was kept only as a parent.
    const newer = context.newer();
    for (const id of gone) if (!newer.has(`${table}:${id}`)) deleteUnlessNeeded(batch, table, id);
    // Read again for their keys alone: one whose new version needs a parent the copy lacks stays.
    const placeable = moved.filter((row) =>
      tables[table].foreignKeys.every((fk) => {
        const parent = row[fk.column];
        return typeof parent !== "string" || batch.get(fk.references, parent) !== null;
      }),
    );
    const done = place(batch, [...blocked, ...placeable]);
    for (const row of done.left) leaveUnplaced(context, table, row);
    return done.written;
  }, options);
  return written;
}

/**
 * Copies the parents `rows` reference that the file lacks; returns how many rows it wrote and,
 * per parent table, the ids of those it still lacks: not placed, or not returned by the tier.
 */
async function copyMissingParents(
  context: CopyContext,
  table: TableName,
  rows: readonly AnyRow[],
): Promise<{ written: number; lacking: ReadonlyMap<TableName, ReadonlySet<string>> }> {
  const { store, from, held, pageSize, options } = context;
  let written = 0;
  const lacking = new Map<TableName, Set<string>>();
  for (const fk of tables[table].foreignKeys) {
    const absent: string[] = [];
    for (const chunk of chunks(valuesOf(rows, fk.column), pageSize)) {
      const local = (await store
        .table(fk.references)
        .list({ where: { id: { in: chunk } } } as never, options)) as AnyRow[];
      const present = new Set(local.map((row) => row.id));
      absent.push(...chunk.filter((id) => !present.has(id)));
    }
    // A parent whose pending local edit is a delete is not fetched back: its children stay out.
    const missing = absent.filter((id) => !held.has(`${fk.references}:${id}`));
    for (const chunk of chunks(missing, pageSize)) {
      const parents = (await from
        .table(fk.references)
        .list({ where: { id: { in: chunk } } } as never, options)) as AnyRow[];
      written += await copyRows(context, fk.references, parents);
    }
    const left = lacking.get(fk.references) ?? new Set<string>();
    for (const id of absent) left.add(id);
    for (const chunk of chunks(missing, pageSize)) {
      const local = await store.table(fk.references).list({ where: { id: { in: chunk } } } as never, options);
      for (const row of local as AnyRow[]) left.delete(row.id);
    }
    lacking.set(fk.references, left);
  }
  return { written, lacking };
}

/**
 * Makes the local copy match the scope on `from`: incrementally (rows changed since the newest one
 * held, minus `overlapMs`; rows that entered the scope in full), or in full. Then keeps the parents
 * of every kept row and evicts everything else, never a row with a pending or dead-lettered edit.
 */
export async function refreshCache(
  store: OfflineStore,
  from: DataSource,
  config: OfflineTierConfig,
  full: boolean,
  options: CallOptions | undefined,
  newer: () => ReadonlySet<string>,
  stillTheirs: () => boolean = () => true,
): Promise<RefreshReport> {
  const window = scopeWindow(config.scope, config.now());
  const state = new Map((await store.records<TableState>(CACHE_STATE, options)).map((r) => [r.key, r.value]));
  const held = keysOf(await ownEdits(store, options));
  const before = full ? new Map<TableName, AnyRow[]>() : await selectScope(store, config, window, options);
  const selected = new Map<TableName, AnyRow[]>();
  const nextState = new Map<TableName, TableState>();
  const context: CopyContext = {
    store,
    from,
    held,
    newer,
    stillTheirs,
    pageSize: config.pageSize,
    options,
    unplaced: new Map(),
  };
  const fetchedByTable = Object.fromEntries(TABLE_NAMES.map((t) => [t, 0])) as Record<TableName, number>;
  let fetched = 0;
  let written = 0;
  /** What the refresh could not place, per table, as kept for the next one. */
  const left = (table: TableName) => [...(context.unplaced.get(table) ?? [])].slice(0, RETRY_IDS);

  try {
    for (const step of SCOPE_STEPS) {
      const previous = state.get(step.table);
      // What the last refresh could not place, asked for again by id while the scope still selects it.
      const again = chunks(previous?.unplaced ?? [], config.pageSize);
      let query: string;
      let rows: AnyRow[];
      if (step.kind === "where") {
        const base = step.query(config.scope, window);
        query = JSON.stringify(base);
        const since = !full && previous?.query === query ? previous.watermark : null;
        const where = since
          ? {
              ...base.where,
              updated_at: { gte: new Date(Date.parse(since) - config.overlapMs).toISOString() },
            }
          : base.where;
        rows = await listAll(from, step.table, { ...base, where }, config.pageSize, options);
        for (const chunk of again) {
          const asked = { ...base, where: { ...base.where, id: { in: chunk } } };
          rows.push(...(await listAll(from, step.table, asked, config.pageSize, options)));
        }
      } else {
        query = JSON.stringify(step.where?.(config.scope, window) ?? {});
        const extra = step.where?.(config.scope, window) ?? {};
        const ids = valuesOf(selected.get(step.input) ?? [], step.inputColumn);
        const known = new Set(valuesOf(before.get(step.input) ?? [], step.inputColumn));
        const since = !full && previous?.query === query ? previous.watermark : null;
        const fresh = since ? ids.filter((id) => !known.has(id)) : ids;
        rows = await listByIds(from, step, fresh, extra, config.pageSize, options);
        if (since) {
          const changed = {
            ...extra,
            updated_at: { gte: new Date(Date.parse(since) - config.overlapMs).toISOString() },
          };
          const old = ids.filter((id) => known.has(id));
          rows.push(...(await listByIds(from, step, old, changed, config.pageSize, options)));
        }
        const inputs = new Set(ids);
        for (const chunk of again) {
          const asked = { where: { ...extra, id: { in: chunk } } };
          const found = await listAll(from, step.table, asked, config.pageSize, options);
          rows.push(...found.filter((row) => inputs.has(row[step.column] as string)));
        }
      }
      rows = [...new Map(rows.map((row) => [row.id, row])).values()];
      fetched += rows.length;
      fetchedByTable[step.table] += rows.length;
      written += await copyRows(context, step.table, rows);
      nextState.set(step.table, { query, watermark: newest(rows, previous?.watermark ?? null) });
      selected.set(step.table, await stepRows(store, step, selected, config, window, options));
    }
  } catch (error) {
    await keepUnplaced(store, state, left, stillTheirs, options).catch(() => {});
    throw error;
  }

  const kept = await keepParents(store, selected, held, config.pageSize, options);
  const evicted = await evict(store, kept, options, { newer, stillTheirs });
  await store.batch((batch) => {
    if (!stillTheirs()) throw handedOver("the copy's refresh");
    // A row of a table left out later, as a parent of another table's row, counts too.
    for (const [table, value] of nextState) {
      const unplaced = left(table);
      batch.setRecord(CACHE_STATE, table, { ...value, ...(unplaced.length > 0 && { unplaced }) });
    }
  }, options);
  const rows = {} as Record<TableName, number>;
  for (const table of TABLE_NAMES) rows[table] = (await store.table(table).list(undefined, options)).length;
  const unplaced = [...context.unplaced.values()].reduce((sum, left) => sum + left.size, 0);
  return { full, fetched, fetchedByTable, written, evicted, unplaced, rows };
}

/**
 * After a refresh that failed (a server lost mid-way): the rows it could not place join those the
 * last one could not, for the next refresh to ask for again and for `unplacedRows` to count. What
 * it asked and the watermarks stay the last complete refresh's. Nothing once the copy changed hands.
 */
async function keepUnplaced(
  store: OfflineStore,
  state: ReadonlyMap<string, TableState>,
  left: (table: TableName) => string[],
  stillTheirs: () => boolean,
  options: CallOptions | undefined,
): Promise<void> {
  if (!stillTheirs()) return;
  await store.batch((batch) => {
    if (!stillTheirs()) throw handedOver("the copy's refresh");
    for (const table of TABLE_NAMES) {
      const added = left(table);
      if (added.length === 0) continue;
      const previous = state.get(table) ?? { query: "", watermark: null };
      const unplaced = [...new Set([...(previous.unplaced ?? []), ...added])].slice(0, RETRY_IDS);
      batch.setRecord(CACHE_STATE, table, { ...previous, unplaced });
    }
  }, options);
}

/**
 * Per table, how many rows the copy still lacks of those the last refresh received and could not
 * place (its report's `unplaced`, kept for the next refresh to ask for again: at most `RETRY_IDS`
 * a table), and of those a refresh stopped mid-way could not; a row placed since (by a refresh the
 * cut stopped after it) no longer counts. Tables with none are left out.
 */
export async function unplacedRows(
  store: OfflineStore,
  options: CallOptions | undefined,
): Promise<Partial<Record<TableName, number>>> {
  const gaps: Partial<Record<TableName, number>> = {};
  for (const { key, value } of await store.records<TableState>(CACHE_STATE, options)) {
    const ids = value.unplaced ?? [];
    if (ids.length === 0) continue;
    const table = key as TableName;
    const placed = await store.table(table).list({ where: { id: { in: ids } } } as never, options);
    const count = ids.length - placed.length;
    if (count > 0) gaps[table] = count;
  }
  return gaps;
}

/** The copy owner's pending and dead-lettered entries (another person's are theirs). */
async function ownEdits(store: OfflineStore, options: CallOptions | undefined): Promise<OutboxEntry[]> {
  return [...(await ownEntries(store, options)), ...(await ownEntries(store, options, DEAD_LETTERS))];
}

const keysOf = (entries: readonly OutboxEntry[]) => new Set(entries.map((e) => entryKey(e.table, e.id)));

/**
 * Makes the local copy `owner`'s (a person): when it held someone else's, every row is removed,
 * and the next refresh is full. A second person on the PC never reads rows fetched for the first,
 * nor the first one's unsent edits: the rows they edited (and the parents those need) are put
 * aside for them (`HELD_ROWS`), and come back, with their edits, when they sign in here again.
 * Entries from before the file had an owner become the leaving person's, or the first owner's.
 * True when it cleared someone else's copy.
 *
 * In steps, crash-safe in this order: the claim is marked (offline writes are refused until it
 * ends); the leaving person's rows are put aside and the copy is nobody's; once `quiesce` resolves
 * (the drains and refreshes begun before the claim have ended), every row is evicted; then the
 * owner's rows come back as the copy becomes theirs. Interrupted, the next claim, by anyone, starts
 * again and keeps no row the copy held.
 */
export async function claimCache(
  store: OfflineStore,
  owner: string,
  pageSize: number,
  options?: CallOptions,
  quiesce: () => Promise<unknown> = async () => {},
) {
  const current = await copyOwner(store, options);
  const interrupted = (await store.records(COPY_OWNER, options)).some((r) => r.key === CLAIMING);
  if (current === owner) {
    // A claim for someone else stopped before it moved anything: the copy is still theirs.
    if (interrupted) await store.batch((batch) => batch.setRecord(COPY_OWNER, CLAIMING, null), options);
    return false;
  }
  await store.batch((batch) => batch.setRecord(COPY_OWNER, CLAIMING, owner), options);
  const stampAs = current ?? owner;
  const records = [
    ...(await store.records<OutboxEntry>(OUTBOX, options)).map((r) => ({ ...r, collection: OUTBOX })),
    ...(await store.records<OutboxEntry>(DEAD_LETTERS, options)).map((r) => ({
      ...r,
      collection: DEAD_LETTERS,
    })),
  ];
  const upserts = (author: string) =>
    keysOf(records.map((r) => r.value).filter((e) => (e.author ?? stampAs) === author && e.op === "upsert"));
  const leaving =
    current === null ? new Map() : await keepParents(store, new Map(), upserts(current), pageSize, options);
  await store.batch((batch) => {
    for (const { collection, key } of records) {
      // As the entry is now: a drain may have settled or moved it since it was listed.
      const entry = batch.getRecord<OutboxEntry>(collection, key);
      if (entry && entry.author === undefined)
        batch.setRecord(collection, key, { ...entry, author: stampAs });
    }
    for (const [table, rows] of leaving as Kept) {
      for (const row of rows.values()) {
        const aside = heldRowKey(current as string, table, row.id);
        // Put aside once: a later copy of the row is someone else's view of it.
        if (batch.getRecord(HELD_ROWS, aside) === null) {
          batch.setRecord(HELD_ROWS, aside, { author: current, table, row });
        }
      }
    }
    batch.setRecord(COPY_OWNER, "owner", null);
  }, options);
  await quiesce();
  // Only a file nobody owned yet holds rows of the owner's own edits (its entries, stamped theirs
  // above); any other copy is someone else's view, the owner's edits included.
  const firstOwner = current === null && !interrupted;
  const kept = await keepParents(
    store,
    new Map(),
    firstOwner ? upserts(owner) : new Set(),
    pageSize,
    options,
  );
  await evict(store, kept, options);
  const aside = (await store.records<HeldRow>(HELD_ROWS, options)).filter((r) => r.value.author === owner);
  const order = new Map(TABLE_NAMES.map((table, index) => [table, index]));
  aside.sort((a, b) => (order.get(a.value.table) ?? 0) - (order.get(b.value.table) ?? 0));
  const tables = (await store.records(CACHE_STATE, options)).map((r) => r.key);
  await store.batch((batch) => {
    // Parents first, into a copy that holds nothing else (the same rows that stood together when
    // they were put aside): a row it refused would fail the claim, never go missing silently.
    for (const { key, value } of aside) {
      if (batch.get(value.table, value.row.id) === null) batch.putVerbatim(value.table, value.row as never);
      batch.setRecord(HELD_ROWS, key, null);
    }
    for (const table of tables) batch.setRecord(CACHE_STATE, table, null);
    batch.setRecord(COPY_OWNER, "owner", owner);
    batch.setRecord(COPY_OWNER, CLAIMING, null);
  }, options);
  return current !== null;
}

/**
 * The rows to keep: the scope's, those with local edits, and — children first, so every need is
 * known when its table comes — every parent they reference (copied in already by `copyRows`).
 * The set is closed under parents, so evicting the rest never cascades into a kept row.
 */
async function keepParents(
  store: OfflineStore,
  selected: ReadonlyMap<TableName, AnyRow[]>,
  held: ReadonlySet<string>,
  pageSize: number,
  options: CallOptions | undefined,
): Promise<Kept> {
  const kept: Kept = new Map(
    TABLE_NAMES.map((t) => [t, new Map((selected.get(t) ?? []).map((r) => [r.id, r]))]),
  );
  const needed = new Map<TableName, Set<string>>(TABLE_NAMES.map((t) => [t, new Set<string>()]));
  for (const key of held) {
    const split = key.indexOf(":");
    needed.get(key.slice(0, split) as TableName)?.add(key.slice(split + 1));
  }
  for (const table of [...TABLE_NAMES].reverse()) {
    const rows = kept.get(table) as Map<string, AnyRow>;
    const missing = [...(needed.get(table) as Set<string>)].filter((id) => !rows.has(id));
    for (const chunk of chunks(missing, pageSize)) {
      const local = (await store
        .table(table)
        .list({ where: { id: { in: chunk } } } as never, options)) as AnyRow[];
      for (const row of local) rows.set(row.id, row);
    }
    for (const row of rows.values()) {
      for (const fk of tables[table].foreignKeys) {
        const value = row[fk.column];
        if (typeof value === "string") needed.get(fk.references)?.add(value);
      }
    }
  }
  return kept;
}

/** Deletes (verbatim, children first) every local row not kept: for a refresh, but what it did not see. */
async function evict(
  store: OfflineStore,
  kept: Kept,
  options: CallOptions | undefined,
  refresh?: Pick<CopyContext, "newer" | "stillTheirs">,
): Promise<number> {
  let evicted = 0;
  for (const table of [...TABLE_NAMES].reverse()) {
    const keep = kept.get(table) as Map<string, AnyRow>;
    const local = (await store.table(table).list(undefined, options)) as AnyRow[];
    const spared = refresh?.newer() ?? new Set<string>();
    const gone = local
      .filter((row) => !keep.has(row.id) && !spared.has(`${table}:${row.id}`))
      .map((row) => row.id);
    for (const chunk of chunks(gone, WRITE_BATCH)) {
      await store.batch((batch) => {
        if (refresh && !refresh.stillTheirs()) throw handedOver("the copy's refresh");
        for (const id of chunk) batch.deleteVerbatim(table, id);
      }, options);
    }
    evicted += gone.length;
  }
  return evicted;
}
