import type { webcrypto } from "node:crypto";
import { resolve } from "node:path";
import { parseConfig } from "@centrovision/core";
import * as z from "zod";

const MIB = 1024 * 1024;

/** Node 20 exposes the CryptoKey class only as a global, not on `webcrypto`. */
const isCryptoKey = (value: unknown): value is webcrypto.CryptoKey =>
  Object.prototype.toString.call(value) === "[object CryptoKey]";

/** An AES-256-GCM key as WebCrypto holds it; raw bytes are imported into one of these at open. */
const aesGcmKey = z.custom<webcrypto.CryptoKey>(
  (value) =>
    isCryptoKey(value) &&
    value.algorithm.name === "AES-GCM" &&
    (value.algorithm as webcrypto.AesKeyAlgorithm).length === 256 &&
    value.usages.includes("encrypt") &&
    value.usages.includes("decrypt"),
  "must be an AES-GCM 256-bit CryptoKey usable to encrypt and decrypt",
);

/** 32 raw bytes (a Node `Buffer` is a `Uint8Array`). Never echoed back in an error. */
const rawKey = z
  .instanceof(Uint8Array, { message: "must be 32 raw bytes (Uint8Array) or an AES-GCM CryptoKey" })
  .refine((bytes) => bytes.byteLength === 32, "must be exactly 32 bytes (AES-256)");

export const sqliteSourceConfigSchema = z
  .object({
    /**
     * The database file, e.g. `C:\ProgramData\CentroVision\clinic.cvdb`. Its siblings
     * `<path>-journal`, `<path>.prev` and `<path>.lock` belong to it. The folder is created if missing.
     */
    path: z
      .string()
      .min(1, "must name the database file")
      .transform((value) => resolve(value)),
    /** The encryption key: 32 raw bytes or a WebCrypto AES-GCM 256-bit key. */
    key: z.union([rawKey, aesGcmKey], { message: "must be 32 raw bytes or an AES-GCM 256-bit CryptoKey" }),
    /** Source id reported to the router and in status. */
    id: z.string().min(1).default("sqlite"),
    /** Default deadline per call, in milliseconds. */
    timeoutMs: z.number().int().positive().default(5_000),
    /**
     * When the journal grows past this many bytes, the next idle moment folds it into a new
     * snapshot. Larger means fewer snapshot pauses but a longer replay after a crash.
     */
    snapshotAfterBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .default(16 * MIB),
  })
  .strict();

/** What a caller passes to `createSqliteSource`. */
export type SqliteSourceConfig = z.input<typeof sqliteSourceConfigSchema>;

/** The config after defaults, with an absolute `path`. */
export type ResolvedSqliteConfig = Readonly<z.output<typeof sqliteSourceConfigSchema>>;

/**
 * Parses once and freezes, or throws `invalid_config` listing every problem with its path.
 * Zod messages describe the expectation, never the value, so the key cannot leak into a log.
 */
export function parseSqliteConfig(input: unknown): ResolvedSqliteConfig {
  return parseConfig("[adapter-sqlite] invalid config", sqliteSourceConfigSchema, input);
}
