import { createCipheriv, createHash, randomBytes } from "node:crypto";
import { deflateRawSync } from "node:zlib";

/**
 * The deflated batch of sql/functions/09_deflated.sql: `cv_sync_apply`'s arguments as JSON, in an
 * OpenPGP message (RFC 4880) that pgcrypto's `pgp_sym_decrypt_bytea` reads back, its data
 * deflated. The passphrase is public: OpenPGP is the only compressed container a Supabase database
 * can open, not a secret (TLS protects the request, the node credential authorises it).
 */
const DEFLATED_PASSPHRASE = "centrovision-sync";

/** The largest body `cv_sync_apply_deflated` takes; a larger batch goes uncompressed. */
export const DEFLATED_MAX_BYTES = 262_144;

const AES_128 = 7;
const SHA_1 = 2;
const ZIP = 1;
const TAG = { sessionKey: 3, compressed: 8, literal: 11, protectedData: 18, mdc: 19 } as const;

/** A packet with a new-format header: one length byte below 192, else the five-byte form. */
function packet(tag: number, body: Buffer): Buffer {
  const header =
    body.length < 192
      ? Buffer.from([0xc0 | tag, body.length])
      : Buffer.from([0xc0 | tag, 0xff, ...uint32(body.length)]);
  return Buffer.concat([header, body]);
}

function uint32(value: number): number[] {
  return [value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff];
}

/** The OpenPGP message holding `json`, deflated. */
export function deflatedMessage(json: string): Uint8Array<ArrayBuffer> {
  // Simple S2K: the session key is the first 16 bytes of SHA-1(passphrase).
  const key = createHash("sha1").update(DEFLATED_PASSPHRASE).digest().subarray(0, 16);
  const sessionKey = packet(TAG.sessionKey, Buffer.from([4, AES_128, 0, SHA_1]));
  // A binary literal: no file name, no date.
  const literal = packet(
    TAG.literal,
    Buffer.concat([Buffer.from([0x62, 0, 0, 0, 0, 0]), Buffer.from(json, "utf8")]),
  );
  const compressed = packet(TAG.compressed, Buffer.concat([Buffer.from([ZIP]), deflateRawSync(literal)]));
  // Integrity-protected data: a random block with its last two bytes repeated, the packets, and
  // the modification detection code (SHA-1 of everything before it, its own header included),
  // in CFB mode from a zero IV.
  const prefix = randomBytes(16);
  const plain = Buffer.concat([prefix, prefix.subarray(14), compressed, Buffer.from([0xc0 | TAG.mdc, 20])]);
  const mdc = createHash("sha1").update(plain).digest();
  const cipher = createCipheriv("aes-128-cfb", key, Buffer.alloc(16));
  const sealed = Buffer.concat([cipher.update(plain), cipher.update(mdc), cipher.final()]);
  return new Uint8Array(
    Buffer.concat([sessionKey, packet(TAG.protectedData, Buffer.concat([Buffer.from([1]), sealed]))]),
  );
}
