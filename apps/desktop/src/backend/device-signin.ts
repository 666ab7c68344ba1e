import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";
import { type EncryptedFile, oneAtATime } from "./session-store.js";

/** Who signed in, as the header shows them. */
export interface SessionUser {
  readonly id: string;
  readonly email: string;
  /** From `profiles.full_name` when the cloud let us read it, else the email. */
  readonly name: string;
}

/** Cost of the verifier: scrypt N=2^15, r=8, p=1 (32 MiB, ~50–100 ms on a clinic PC). */
const PARAMS = { N: 2 ** 15, r: 8, p: 1 } as const;
const HASH_BYTES = 32;
const SALT_BYTES = 16;
/** How many recent users a PC keeps a verifier for (the staff of one reception desk). */
const KEEP = 20;
/**
 * How far ahead of this PC's clock a verifier's online sign-in may be stamped: the servers' allowed
 * skew for timestamps from clients (`cv_sync.node.max_clock_skew`, 5 minutes, sql/0005_sync.sql).
 */
const MAX_CLOCK_SKEW_MS = 5 * 60_000;

const derive = promisify(scrypt) as (
  password: string,
  salt: Buffer,
  length: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

interface Verifier {
  readonly user: SessionUser;
  readonly salt: string;
  readonly hash: string;
  readonly params: { readonly N: number; readonly r: number; readonly p: number };
  /** The last online sign-in: the verifier is good for `offlineDays` after it. */
  readonly onlineAt: string;
  readonly failures: number;
  readonly lockedUntil: string | null;
}

export interface VerifierDocument {
  readonly users: Readonly<Record<string, Verifier>>;
}

export type DeviceCheck =
  | { readonly ok: true; readonly user: SessionUser; readonly validUntil: Date }
  /**
   * `none`: no verifier for this email, or it expired, or it was made under a clock set ahead;
   * `wrong`: the password did not match.
   */
  | { readonly ok: false; readonly reason: "none" | "wrong" | "locked" };

export interface DeviceSignInOptions {
  readonly file: EncryptedFile<VerifierDocument>;
  readonly offlineDays: number;
  readonly lockoutAttempts: number;
  readonly lockoutMinutes: number;
  readonly now: () => Date;
}

/** Offline sign-in on this PC for its recent users, against verifiers made at online sign-ins. */
export interface DeviceSignIn {
  /**
   * After a successful online sign-in: a fresh salt and verifier, the window restarts, failures
   * reset. Operations run one at a time, so a check after it waits for the verifier.
   */
  remember(user: SessionUser, password: string): Promise<void>;
  /** Checks a password; wrong ones count towards the lockout, which survives a restart. */
  check(email: string, password: string): Promise<DeviceCheck>;
  /** Drops an account's verifier (it was banned or refused online). */
  forget(email: string): Promise<void>;
}

const keyOf = (email: string) => email.trim().toLowerCase();

async function hashOf(password: string, salt: Buffer, params: Verifier["params"]): Promise<Buffer> {
  return derive(password, salt, HASH_BYTES, { ...params, maxmem: 256 * params.N * params.r });
}

export function createDeviceSignIn(options: DeviceSignInOptions): DeviceSignIn {
  const { file, now } = options;
  const windowMs = options.offlineDays * 86_400_000;
  let users: Record<string, Verifier> | null = null;
  const serial = oneAtATime();
  // One operation at a time: parallel guesses cannot slip past the failure count. An unreadable
  // file (another key) counts as empty: the next online sign-in writes a new one.
  const exclusive = <T>(work: (all: Record<string, Verifier>) => Promise<T>): Promise<T> =>
    serial(async () => {
      users ??= { ...((await file.read().catch(() => null))?.users ?? {}) };
      return work(users);
    });
  const save = (all: Record<string, Verifier>) => file.write({ users: all });

  return {
    remember(user, password) {
      // The window starts at the online sign-in, not when the slow hash is done.
      const onlineAt = now().toISOString();
      return exclusive(async (all) => {
        const salt = randomBytes(SALT_BYTES);
        const hash = await hashOf(password, salt, PARAMS);
        all[keyOf(user.email)] = {
          user,
          salt: salt.toString("base64"),
          hash: hash.toString("base64"),
          params: PARAMS,
          onlineAt,
          failures: 0,
          lockedUntil: null,
        };
        const recent = Object.entries(all).sort(([, a], [, b]) => b.onlineAt.localeCompare(a.onlineAt));
        for (const [email] of recent.slice(KEEP)) delete all[email];
        await save(all);
      });
    },

    check: (email, password) =>
      exclusive(async (all): Promise<DeviceCheck> => {
        const key = keyOf(email);
        const verifier = all[key];
        const at = now().getTime();
        const onlineAt = verifier ? Date.parse(verifier.onlineAt) : Number.NaN;
        const validUntil = onlineAt + windowMs;
        // An online sign-in stamped later than now was made under a clock set ahead (year 9999):
        // its window would run that far past offline_days, for someone the cloud may have disabled
        // since. No verifier, then: the person signs in online once, which stamps a new one.
        if (!verifier || !(onlineAt <= at + MAX_CLOCK_SKEW_MS) || validUntil <= at) {
          return { ok: false, reason: "none" };
        }
        if (verifier.lockedUntil !== null && Date.parse(verifier.lockedUntil) > at) {
          return { ok: false, reason: "locked" };
        }
        const expected = Buffer.from(verifier.hash, "base64");
        const actual = await hashOf(password, Buffer.from(verifier.salt, "base64"), verifier.params);
        if (actual.length === expected.length && timingSafeEqual(actual, expected)) {
          if (verifier.failures > 0 || verifier.lockedUntil !== null) {
            all[key] = { ...verifier, failures: 0, lockedUntil: null };
            await save(all);
          }
          return { ok: true, user: verifier.user, validUntil: new Date(validUntil) };
        }
        const failures = verifier.failures + 1;
        const locked = failures >= options.lockoutAttempts;
        all[key] = {
          ...verifier,
          failures: locked ? 0 : failures,
          lockedUntil: locked ? new Date(at + options.lockoutMinutes * 60_000).toISOString() : null,
        };
        await save(all);
        return { ok: false, reason: "wrong" };
      }),

    forget: (email) =>
      exclusive(async (all) => {
        if (!(keyOf(email) in all)) return;
        delete all[keyOf(email)];
        await save(all);
      }),
  };
}
