import { CvError, ERROR_CODES, type ErrorCode } from "@centrovision/core/shared";

const isErrorCode = (value: unknown): value is ErrorCode =>
  typeof value === "string" && (ERROR_CODES as readonly string[]).includes(value);

/** Any thrown value as an `Error`, keeping what crossed the transport (a `CvErrorJSON` body, say). */
export function asError(error: unknown): Error {
  if (error instanceof Error) return error;
  if (
    typeof error === "object" &&
    error !== null &&
    typeof (error as { message?: unknown }).message === "string"
  ) {
    const code = (error as { code?: unknown }).code;
    return new CvError(isErrorCode(code) ? code : "unknown", (error as { message: string }).message);
  }
  return new CvError("unknown", "[ui-react] the status transport failed without an error message");
}
