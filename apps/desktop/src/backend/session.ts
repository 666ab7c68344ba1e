import { CvError } from "@centrovision/core";
import { isAuthApiError, isAuthRetryableFetchError } from "@supabase/supabase-js";
import { BehaviorSubject, distinctUntilChanged, type Observable } from "rxjs";
import type { ClinicDoor } from "./clinic-door.js";
import { createDeviceSignIn, type SessionUser, type VerifierDocument } from "./device-signin.js";
import { AUTH_STORAGE_KEY, createAuthClient, profileName, storedAuthSession } from "./session-auth.js";
import { deriveSessionKey, encryptedFile, oneAtATime, sessionPaths } from "./session-store.js";

export type { SessionUser } from "./device-signin.js";

/**
 * `online`: Supabase Auth answered; `clinic`: the clinic server checked the verifier an earlier
 * online sign-in left there (the cloud unreachable); `device`: this PC checked its own verifier
 * (neither reachable).
 */
export type SignInMethod = "online" | "clinic" | "device";

export type SessionState =
  | { readonly signedIn: false }
  | {
      readonly signedIn: true;
      readonly user: SessionUser;
      readonly method: SignInMethod;
      /** Online: the access token's expiry (renewed before it); device: when this sign-in ends. */
      readonly expiresAt: string | null;
      /** An online session with an access token still good: the cloud may be used on its behalf. */
      readonly cloudUsable: boolean;
      /** A clinic session still good: the clinic server may be used on its behalf. */
      readonly clinicUsable: boolean;
    };

export interface PcSessionOptions {
  readonly url: string;
  readonly anonKey: string;
  /** The session files live next to this database and are keyed from its key. */
  readonly sqlitePath: string;
  readonly sqliteKey: Uint8Array;
  /** Offline sign-in is allowed for this long after a person's last online sign-in here. Default 7. */
  readonly offlineDays?: number;
  readonly lockoutAttempts?: number;
  readonly lockoutMinutes?: number;
  /** Deadline of each request to Supabase Auth (auth-js has none). Default 5 s. */
  readonly authTimeoutMs?: number;
  readonly now?: () => Date;
  readonly fetch?: typeof fetch;
  /** The clinic server's sign-in functions; without one, the PC has only the cloud and itself. */
  readonly clinic?: ClinicDoor;
  /** An online person's clinic session is renewed from the cloud once it is this old. Default 1 h. */
  readonly clinicRenewMs?: number;
  /**
   * Runs (awaited) after a person's credentials were checked and before they count as signed in:
   * the PC makes its offline copy theirs there. A failure fails the sign-in.
   */
  readonly beforeSignedIn?: (user: SessionUser) => Promise<void>;
  /** Operational failures: codes and messages, never an email, password or token. */
  readonly onError?: (what: string, error: CvError) => void;
}

/**
 * The person signed in on this PC. Data commands run only while someone is; the cloud is used
 * only with an online session whose access token is good; a network error never signs anyone
 * out; sign-out is local first. Operations that change who is signed in run one at a time.
 */
export interface PcSession {
  /** Emits on sign-in, sign-out, token renewal and session end. Read `current()` for time-based expiry. */
  readonly state$: Observable<SessionState>;
  current(): SessionState;
  /** The current access token, for the cloud's data clients. @throws CvError `unavailable` without an online session. */
  accessToken(): string;
  /**
   * Online first (only briefly when `cloudDown`), on this PC when the cloud cannot be reached.
   * @throws CvError `unauthorized` (wrong credentials, banned, locked out), `unavailable` (no cloud, no verifier).
   */
  signIn(email: string, password: string, options?: { cloudDown?: boolean }): Promise<SessionState>;
  /** Clears the local session at once, then tells the cloud if it can (never waits on it). */
  signOut(): Promise<void>;
  /** Renews the access token now; false when it could not (kept on a network error, ended when refused for good). */
  refresh(): Promise<boolean>;
  /** The person's clinic session while it is good, for the clinic server's connections. */
  clinicToken(): string | undefined;
  /**
   * Fetches a clinic session from the cloud for an online person whose clinic session is missing
   * or older than `clinicRenewMs`; true when one is held afterwards. Never throws.
   */
  renewClinic(): Promise<boolean>;
  close(): Promise<void>;
}

/** A session on the clinic server (sql/0003): minted by the cloud (online) or by the clinic itself. */
interface ClinicSession {
  readonly token: string;
  readonly issuedAt: string;
  readonly expiresAt: string;
}

interface Identity {
  readonly user: SessionUser;
  readonly method: SignInMethod;
  /** Device sign-ins only: the end of the verifier's window. */
  readonly expiresAt: string | null;
  readonly clinic?: ClinicSession;
}

interface SessionDocument {
  /** auth-js's storage (its session under AUTH_STORAGE_KEY). */
  readonly items: Readonly<Record<string, string>>;
  readonly identity: Identity | null;
  /** The clinic server's key id, learnt once, so a renewal needs only the cloud. */
  readonly clinicKeyId?: string;
}

const EMPTY: SessionDocument = { items: {}, identity: null };

const SIGNED_OUT: SessionState = { signedIn: false };
/** The cloud is not used with an access token this close to expiry: it is being renewed. */
const TOKEN_MARGIN_MS = 10_000;
/** How long a sign-in tries a cloud the router found down: a link just back is used at once. */
const BRIEF_TRY_MS = 2_000;

/** What the person reads when a sign-in fails: a wrong password reads the same online and offline. */
export const SIGN_IN_MESSAGES = {
  wrong: "Correo o contraseña incorrectos.",
  banned: "Su cuenta está desactivada. Consulte al administrador.",
  noDevice: "Sin conexión con la nube y este equipo no tiene una sesión reciente de esta cuenta.",
  locked: (minutes: number) => `Demasiados intentos. Espere ${minutes} minutos.`,
} as const;

/** How a change is attributed: the person and how they signed in. */
export function authorOf(state: SessionState): string | undefined {
  return state.signedIn ? `${state.user.id} (${state.method})` : undefined;
}

export async function createPcSession(options: PcSessionOptions): Promise<PcSession> {
  const now = options.now ?? (() => new Date());
  const timeoutMs = options.authTimeoutMs ?? 5_000;
  const lockoutMinutes = options.lockoutMinutes ?? 15;
  const clinicRenewMs = options.clinicRenewMs ?? 3_600_000;
  const report = (what: string, error: unknown) =>
    options.onError?.(
      what,
      error instanceof CvError ? error : new CvError("unknown", "[desktop] unexpected failure"),
    );
  const key = deriveSessionKey(options.sqliteKey);
  const paths = sessionPaths(options.sqlitePath);
  const file = encryptedFile<SessionDocument>(paths.session, key, "session");
  const device = createDeviceSignIn({
    file: encryptedFile<VerifierDocument>(paths.verifiers, key, "offline sign-in"),
    offlineDays: options.offlineDays ?? 7,
    lockoutAttempts: options.lockoutAttempts ?? 5,
    lockoutMinutes,
    now,
  });
  let doc: SessionDocument = await file.read().then(
    (found) => found ?? EMPTY,
    (error: unknown) => {
      report("reading the saved session", error);
      return EMPTY;
    },
  );
  let signingIn = false;
  /** While the router believes the cloud is down, a sign-in tries it only briefly before this PC's verifier. */
  let briefly = false;
  const logouts = new Set<Promise<void>>();
  /** Work a sign-in left running (the verifiers, the clinic session); awaited by close(). */
  const background = new Set<Promise<void>>();
  const authSession = () => storedAuthSession(doc.items);

  const clinicGood = (
    identity: Identity | null,
    at: number,
  ): identity is Identity & { clinic: ClinicSession } =>
    identity?.clinic !== undefined && Date.parse(identity.clinic.expiresAt) - TOKEN_MARGIN_MS > at;

  const derive = (): SessionState => {
    const identity = doc.identity;
    if (identity === null) return SIGNED_OUT;
    const at = now().getTime();
    const { user, method } = identity;
    const clinicUsable = clinicGood(identity, at);
    if (method === "device" || method === "clinic") {
      const over = identity.expiresAt !== null && Date.parse(identity.expiresAt) <= at;
      return over
        ? SIGNED_OUT
        : { signedIn: true, user, method, expiresAt: identity.expiresAt, cloudUsable: false, clinicUsable };
    }
    const auth = authSession();
    if (auth === null) return SIGNED_OUT;
    const expires = auth.expires_at === undefined ? null : auth.expires_at * 1000;
    return {
      signedIn: true,
      user,
      method,
      expiresAt: expires === null ? null : new Date(expires).toISOString(),
      cloudUsable: expires === null || expires - TOKEN_MARGIN_MS > at,
      clinicUsable,
    };
  };

  /** Nobody signed in; the clinic's key id stays known. */
  const signedOut = (): SessionDocument => ({
    ...EMPTY,
    ...(doc.clinicKeyId !== undefined && { clinicKeyId: doc.clinicKeyId }),
  });

  const subject = new BehaviorSubject<SessionState>(derive());
  const update = async (next: SessionDocument) => {
    doc = next;
    subject.next(derive());
    await file.write(doc).catch((error: unknown) => report("saving the session", error));
  };

  const client = createAuthClient({
    url: options.url,
    anonKey: options.anonKey,
    timeoutMs: () => (briefly ? Math.min(timeoutMs, BRIEF_TRY_MS) : timeoutMs),
    ...(options.fetch !== undefined && { fetch: options.fetch }),
    storage: {
      getItem: (name) => doc.items[name] ?? null,
      setItem: async (name, value) => {
        // A refresh finishing after a sign-out must not bring the session back.
        if (doc.identity === null && !signingIn) return;
        await update({ ...doc, items: { ...doc.items, [name]: value } });
      },
      removeItem: async (name) => {
        if (!(name in doc.items)) return;
        const { [name]: _removed, ...items } = doc.items;
        // auth-js drops its session only after the cloud refused it for good: that sign-in is over.
        const ended = name === AUTH_STORAGE_KEY && doc.identity?.method === "online";
        await update({ ...doc, items, identity: ended ? null : doc.identity });
      },
    },
    onRefusedForGood: async (refreshToken, code) => {
      // A late answer about an earlier session (signed out since) changes nothing.
      if (refreshToken !== authSession()?.refresh_token) return;
      const error = new CvError(
        "unauthorized",
        `[desktop] the cloud ended the session (${code}); sign in again`,
      );
      report("renewing the session", error);
      await update(signedOut());
    },
  });

  const endLocally = async () => {
    const token = doc.identity?.method === "online" ? authSession()?.access_token : undefined;
    const clinicSession = doc.identity?.clinic?.token;
    await update(signedOut());
    if (clinicSession !== undefined && options.clinic !== undefined) {
      const ending = options.clinic.signOut(clinicSession).catch(() => {});
      logouts.add(ending);
      void ending.finally(() => logouts.delete(ending));
    }
    if (token === undefined) return;
    // Only after the local session is gone (supabase-js #2501 threw before clearing anything):
    // offline this fails and changes nothing; online it revokes the refresh token.
    const logout = client.auth.admin.signOut(token, "local").then(
      () => {},
      () => {},
    );
    logouts.add(logout);
    void logout.finally(() => logouts.delete(logout));
  };

  /** The signed-in state, or null when the cloud could not be reached. */
  const signInOnline = async (
    email: string,
    password: string,
    brief: boolean,
  ): Promise<SessionState | null> => {
    signingIn = true;
    briefly = brief;
    const { data, error } = await client.auth.signInWithPassword({ email, password }).finally(() => {
      signingIn = false;
      briefly = false;
    });
    if (error === null && data.session !== null) {
      const { id } = data.user;
      const address = data.user.email ?? email;
      const user = { id, email: address, name: (await profileName(client, id, timeoutMs)) ?? address };
      await options.beforeSignedIn?.(user);
      await update({ ...doc, identity: { user, method: "online", expiresAt: null } });
      // This PC's verifier (scrypt, ~90 ms), the clinic session and the clinic's verifier follow in
      // the background: neither may slow a sign-in (a clinic server that is down least of all), and
      // the password is needed only until both verifiers are made.
      const remembering = device
        .remember(user, password)
        .catch((e: unknown) => report("keeping the offline sign-in", e));
      background.add(remembering);
      void remembering.finally(() => background.delete(remembering));
      const enrolling = renewClinic(true).then(async (held) => {
        const token = doc.identity?.clinic?.token;
        if (!held || token === undefined || doc.identity?.user.id !== id) return;
        await options.clinic
          ?.enroll(token, password)
          .catch((e: unknown) => report("leaving an offline sign-in on the clinic server", e));
      });
      background.add(enrolling);
      void enrolling.finally(() => background.delete(enrolling));
      return derive();
    }
    if (error !== null && isAuthRetryableFetchError(error)) return null;
    if (error !== null && isAuthApiError(error) && error.code === "user_banned") {
      await device.forget(email);
      throw new CvError("unauthorized", SIGN_IN_MESSAGES.banned);
    }
    throw new CvError("unauthorized", SIGN_IN_MESSAGES.wrong);
  };

  /** The clinic server's answer, or null when it could not be asked or does not know this person. */
  const signInAtClinic = async (email: string, password: string): Promise<SessionState | null> => {
    if (options.clinic === undefined) return null;
    const answer = await options.clinic.signIn(email, password).catch((error: unknown) => {
      report("signing in on the clinic server", error);
      return null;
    });
    if (answer === null) return null;
    if (answer.ok) {
      const clinic = { token: answer.token, issuedAt: now().toISOString(), expiresAt: answer.expiresAt };
      const user = {
        id: answer.user.id,
        email: answer.user.email,
        name: answer.user.name ?? answer.user.email,
      };
      await options.beforeSignedIn?.(user);
      await update({
        ...doc,
        items: {},
        identity: { user, method: "clinic", expiresAt: answer.expiresAt, clinic },
      });
      return derive();
    }
    if (answer.reason === "locked")
      throw new CvError("unauthorized", SIGN_IN_MESSAGES.locked(lockoutMinutes));
    if (answer.reason === "disabled") {
      await device.forget(email);
      throw new CvError("unauthorized", SIGN_IN_MESSAGES.banned);
    }
    // wrong or expired: the clinic may simply not know this person yet; this PC may.
    return null;
  };

  /**
   * An online person's clinic session, fetched from the cloud when missing or older than
   * `clinicRenewMs` (`force`: now). The clinic's key id is asked once and remembered.
   */
  const renewClinic = async (force = false): Promise<boolean> => {
    const identity = doc.identity;
    const at = now().getTime();
    if (identity === null || options.clinic === undefined) return false;
    if (identity.method !== "online") return clinicGood(identity, at);
    const fresh = identity.clinic !== undefined && at - Date.parse(identity.clinic.issuedAt) < clinicRenewMs;
    if (!force && fresh && clinicGood(identity, at)) return true;
    const state = derive();
    if (!state.signedIn || !state.cloudUsable) return clinicGood(identity, at);
    try {
      const keyId = doc.clinicKeyId ?? (await options.clinic.keyId());
      if (doc.clinicKeyId !== keyId) await update({ ...doc, clinicKeyId: keyId });
      const { data, error } = await client.rpc("cv_clinic_session", { p_key_id: keyId });
      if (error !== null) {
        throw new CvError(
          "unavailable",
          `[desktop] the cloud gave no clinic session (${error.code ?? "no code"})`,
        );
      }
      const answer = data as { token: string; expires_at: string };
      // The person may have changed while the cloud answered.
      if (doc.identity?.user.id !== identity.user.id || doc.identity.method !== "online") return false;
      const clinic = {
        token: answer.token,
        issuedAt: now().toISOString(),
        expiresAt: new Date(answer.expires_at).toISOString(),
      };
      await update({ ...doc, identity: { ...doc.identity, clinic } });
      return true;
    } catch (error) {
      report("fetching the clinic session", error);
      return clinicGood(doc.identity, now().getTime());
    }
  };

  const signInOnDevice = async (email: string, password: string): Promise<SessionState> => {
    const check = await device.check(email, password);
    if (check.ok) {
      const expiresAt = check.validUntil.toISOString();
      await options.beforeSignedIn?.(check.user);
      await update({ ...signedOut(), identity: { user: check.user, method: "device", expiresAt } });
      return derive();
    }
    if (check.reason === "wrong") throw new CvError("unauthorized", SIGN_IN_MESSAGES.wrong);
    if (check.reason === "locked") throw new CvError("unauthorized", SIGN_IN_MESSAGES.locked(lockoutMinutes));
    throw new CvError("unavailable", SIGN_IN_MESSAGES.noDevice);
  };

  const exclusive = oneAtATime();
  return {
    state$: subject.pipe(distinctUntilChanged((a, b) => JSON.stringify(a) === JSON.stringify(b))),
    current: derive,
    accessToken() {
      const auth = authSession();
      if (doc.identity?.method !== "online" || auth === null) {
        throw new CvError(
          "unavailable",
          "[desktop] no online session: the cloud serves only a person signed in online",
        );
      }
      return auth.access_token;
    },
    signIn: (email, password, signInOptions) =>
      exclusive(async () => {
        const normalized = email.trim().toLowerCase();
        if (doc.identity !== null) await endLocally();
        const online = await signInOnline(normalized, password, signInOptions?.cloudDown === true);
        if (online !== null) return online;
        return (await signInAtClinic(normalized, password)) ?? signInOnDevice(normalized, password);
      }),
    signOut: () => exclusive(endLocally),
    async refresh() {
      if (doc.identity?.method !== "online" || authSession() === null) return false;
      const { error } = await client.auth.refreshSession();
      return error === null;
    },
    clinicToken() {
      const identity = doc.identity;
      return clinicGood(identity, now().getTime()) ? identity.clinic.token : undefined;
    },
    renewClinic: () => renewClinic(),
    async close() {
      await client.auth.stopAutoRefresh();
      await Promise.all([...logouts, ...background]);
      subject.complete();
    },
  };
}
