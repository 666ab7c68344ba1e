import { webcrypto } from "node:crypto";

const { subtle } = webcrypto;

export type AesKey = webcrypto.CryptoKey;

/** AES-GCM IV length: 96 bits, the size GCM is specified for (no extra GHASH step). */
export const IV_BYTES = 12;
/** AES-GCM authentication tag length, appended to every ciphertext. */
export const TAG_BYTES = 16;

/**
 * Imports 32 raw bytes as a non-extractable AES-256-GCM key, or passes a CryptoKey through.
 * The adapter keeps only the CryptoKey: the raw bytes are not retained, and a non-extractable
 * key cannot be read back out of the process by `exportKey`.
 */
export async function importKey(key: Uint8Array | AesKey): Promise<AesKey> {
  if (key instanceof Uint8Array) {
    return subtle.importKey("raw", key, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
  }
  return key;
}

/** A fresh random IV. A (key, IV) pair is never reused: reuse would break GCM's confidentiality. */
export function freshIv(): Uint8Array {
  return webcrypto.getRandomValues(new Uint8Array(IV_BYTES));
}

/** Ciphertext with the 16-byte tag appended. `aad` is authenticated but not encrypted. */
export async function encrypt(
  key: AesKey,
  iv: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
): Promise<Uint8Array> {
  const out = await subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: aad, tagLength: 128 },
    key,
    plaintext,
  );
  return new Uint8Array(out);
}

/** The plaintext, or `null` when authentication fails (wrong key, altered or truncated bytes). */
export async function decrypt(
  key: AesKey,
  iv: Uint8Array,
  ciphertext: Uint8Array,
  aad: Uint8Array,
): Promise<Uint8Array | null> {
  try {
    const out = await subtle.decrypt(
      { name: "AES-GCM", iv, additionalData: aad, tagLength: 128 },
      key,
      ciphertext,
    );
    return new Uint8Array(out);
  } catch {
    return null;
  }
}

/**
 * A key check: the GCM tag of an empty message under a fresh IV, bound to `aad` (the file
 * header). Verifying it tells "wrong key" apart from "damaged data" before any data is
 * decrypted, and reveals nothing about the key.
 */
export async function makeKeyCheck(
  key: AesKey,
  aad: Uint8Array,
): Promise<{ iv: Uint8Array; tag: Uint8Array }> {
  const iv = freshIv();
  const tag = await encrypt(key, iv, new Uint8Array(0), aad);
  return { iv, tag };
}

export async function verifyKeyCheck(
  key: AesKey,
  iv: Uint8Array,
  tag: Uint8Array,
  aad: Uint8Array,
): Promise<boolean> {
  return (await decrypt(key, iv, tag, aad)) !== null;
}
