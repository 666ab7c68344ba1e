import { CvError, type ErrorCode } from "@centrovision/core";
import type { SyncPeer } from "@centrovision/sync-engine";

/**
 * What the clinic server needs from the cloud to know the person (sql/0011): its signing key
 * registered there (so the cloud can mint clinic sessions), and the cloud's disabled users copied
 * here (so a banned or deleted user's clinic sessions and offline sign-in stop working). The same
 * pass seals both nodes' audit trails (sql/0012), so the events of each cycle's writes are chained,
 * and hands the clinic server's sealed events to the cloud, so its trail outlives the server.
 */
export interface IdentityStatus {
  /** The clinic's current key is registered in the cloud (confirmed by this process). */
  readonly keyRegistered: boolean;
  /** The clinic key's id (the `kid` of its sessions, not a secret); null until read. */
  readonly keyId: string | null;
  readonly keyRegisteredAt: string | null;
  /** Users the cloud disabled, as last copied to the clinic server; null until copied once. */
  readonly disabledUsers: number | null;
  readonly lastCopiedAt: string | null;
  /** Audit events the last pass chained, on the clinic server and in the cloud; null until sealed once. */
  readonly auditSealed: number | null;
  readonly auditSealedAt: string | null;
  /** How far the cloud holds the clinic server's audit chain (its position); null until asked once. */
  readonly auditInCloud: number | null;
  /** The last pass's failure, null once a pass succeeds: code and message, never a key. */
  readonly lastError: { readonly code: ErrorCode; readonly message: string; readonly at: string } | null;
}

export interface IdentityCopier {
  /**
   * One pass: copies the cloud's disabled users to the clinic server, then registers the clinic's
   * key in the cloud unless this process already did for the same key id within the hour. Never
   * rejects: a failure is the status's `lastError`, and the next pass tries again (the clinic keeps
   * its last copy). Passes must not overlap (the daemon runs one at a time).
   */
  copy(): Promise<IdentityStatus>;
  status(): IdentityStatus;
  /** Cancels the pass in flight (nothing half-done: each call is one statement); the peers stay the caller's. */
  close(): Promise<void>;
}

/**
 * A registration is re-sent this often although the key is unchanged: a cloud restored from a
 * backup older than it would otherwise answer CV011 to every PC until the daemon restarts, and
 * nothing tells the daemon (only a signed-in person may ask for a clinic session). The cloud
 * writes nothing when the key is the same.
 */
const REREGISTER_MS = 60 * 60_000;
/**
 * The cloud's audit trail is sealed by every clinic's daemon; once a minute from each is plenty
 * (its events wait at most that long to be chained) and keeps fifty clinics from sealing it
 * two hundred times a minute.
 */
const CLOUD_SEAL_MS = 60_000;
/**
 * How far the cloud holds this clinic's chain is asked once and then followed from what this
 * process shipped; asked again after a failure, and this often in case the cloud was restored.
 */
const HEAD_RECHECK_MS = 60 * 60_000;

/**
 * The identity copy over the daemon's own peers (their deadlines, error mapping and reply checks):
 * `cloud` (the service key) and `clinic` (the daemon's login in centrovision_sync).
 */
export function createIdentityCopier(peers: { cloud: SyncPeer; clinic: SyncPeer }): IdentityCopier {
  const { cloud, clinic } = peers;
  let registered: { keyId: string; at: number } | undefined;
  let inFlight: Promise<IdentityStatus> | undefined;
  // A stop must not wait out the deadlines of a pass against a cloud that does not answer.
  const stopping = new AbortController();
  const callOptions = { signal: stopping.signal };
  let state: IdentityStatus = {
    keyRegistered: false,
    keyId: null,
    keyRegisteredAt: null,
    disabledUsers: null,
    lastCopiedAt: null,
    auditSealed: null,
    auditSealedAt: null,
    auditInCloud: null,
    lastError: null,
  };

  const copyDisabledUsers = async () => {
    const count = await clinic.setDisabledUsers(await cloud.disabledUsers(callOptions), callOptions);
    state = { ...state, disabledUsers: count, lastCopiedAt: new Date().toISOString() };
  };

  const registerKey = async () => {
    const key = await clinic.clinicKey(callOptions);
    state = { ...state, keyId: key.keyId, keyRegistered: registered?.keyId === key.keyId };
    if (registered?.keyId === key.keyId && Date.now() - registered.at < REREGISTER_MS) return;
    await cloud.registerClinicKey(key, callOptions);
    registered = { keyId: key.keyId, at: Date.now() };
    state = { ...state, keyRegistered: true, keyRegisteredAt: new Date(registered.at).toISOString() };
  };

  let cloudSealedAt: number | undefined;
  /** Seals both trails; resolves with how many events it chained on the clinic server. */
  const sealAudit = async (): Promise<number> => {
    const sealedHere = await clinic.sealAudit(callOptions);
    let sealed = sealedHere;
    if (cloudSealedAt === undefined || Date.now() - cloudSealedAt >= CLOUD_SEAL_MS) {
      sealed += await cloud.sealAudit(callOptions);
      cloudSealedAt = Date.now();
    }
    state = { ...state, auditSealed: sealed, auditSealedAt: new Date().toISOString() };
    return sealedHere;
  };

  let clinicNodeId: string | undefined;
  /** The cloud's head of this clinic's chain as this process last learnt or moved it, and when it asked. */
  let cloudHead: { position: number; askedAt: number } | undefined;
  /** `sealedHere`: what this pass's seal chained on the clinic server; undefined when it failed. */
  const shipAudit = async (sealedHere: number | undefined) => {
    // Only this process seals the clinic server's trail: when its seal chained nothing and the
    // last shipment went through, there is nothing sealed the cloud lacks.
    if (sealedHere === 0 && cloudHead !== undefined && Date.now() - cloudHead.askedAt < HEAD_RECHECK_MS)
      return;
    clinicNodeId ??= (await clinic.node(callOptions)).nodeId;
    if (cloudHead === undefined || Date.now() - cloudHead.askedAt >= HEAD_RECHECK_MS) {
      const askedAt = Date.now();
      cloudHead = { position: await cloud.auditHead(clinicNodeId, callOptions), askedAt };
    }
    const known = cloudHead;
    // Until the cloud confirms a shipment, the head is asked again next time.
    cloudHead = undefined;
    let head = known.position;
    for (;;) {
      const events = await clinic.sealedAuditAfter(head, callOptions);
      const last = events.at(-1);
      if (last === undefined) break;
      await cloud.receiveAudit(events, callOptions);
      head = last.position;
    }
    cloudHead = { position: head, askedAt: known.askedAt };
    state = { ...state, auditInCloud: head };
  };

  const pass = async (): Promise<IdentityStatus> => {
    let failure: CvError | undefined;
    const note = (error: unknown) => {
      failure ??=
        error instanceof CvError
          ? error
          : new CvError("unknown", "[sync-daemon] the identity copy failed unexpectedly", { cause: error });
    };
    // Revocation first: of the two, it is the one whose delay matters.
    await copyDisabledUsers().catch(note);
    await registerKey().catch(note);
    const sealedHere = await sealAudit().catch((error: unknown) => {
      note(error);
      return undefined;
    });
    await shipAudit(sealedHere).catch(note);
    state = {
      ...state,
      lastError: failure
        ? { code: failure.code, message: failure.message, at: new Date().toISOString() }
        : null,
    };
    return state;
  };

  return {
    copy() {
      inFlight = pass();
      return inFlight;
    },
    status: () => state,
    async close() {
      stopping.abort();
      await inFlight;
    },
  };
}
