import type { CvErrorJSON, ErrorCode } from "@centrovision/core";

/**
 * The error this package throws; messages start with `[ui-react]`, or keep the prefix of the
 * package that raised them on the other side of the transport. Same `name`, `code` and JSON form
 * as core's `CvError` (match on `error.code`, not on the class), but defined here so the browser
 * bundle does not pull core's runtime (zod schemas, RxJS) for one class.
 */
export class UiError extends Error {
  override readonly name = "CentroVisionError";
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }

  toJSON(): CvErrorJSON {
    return { name: this.name, code: this.code, message: this.message };
  }
}

/** Any thrown value as an `Error`, keeping what crossed the transport (a `CvErrorJSON` body, say). */
export function asError(error: unknown): Error {
  if (error instanceof Error) return error;
  if (
    typeof error === "object" &&
    error !== null &&
    typeof (error as { message?: unknown }).message === "string"
  ) {
    const code = (error as { code?: unknown }).code;
    return new UiError(isErrorCode(code) ? code : "unknown", (error as { message: string }).message);
  }
  return new UiError("unknown", "[ui-react] the status transport failed without an error message");
}

// Core's ERROR_CODES, kept here to keep core's runtime out of the bundle; the Record type makes the
// compiler reject a code missing from this list or one core does not have.
const KNOWN_CODES: Readonly<Record<ErrorCode, true>> = {
  unavailable: true,
  timeout: true,
  not_found: true,
  conflict: true,
  constraint: true,
  invalid_input: true,
  invalid_config: true,
  unauthorized: true,
  unknown: true,
};

function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(KNOWN_CODES, value);
}
