/**
 * The closed set of error codes every source speaks. `unavailable` and
 * `timeout` are the only codes that mean "this tier is down": the router fails
 * over on them and on nothing else.
 */
export const ERROR_CODES = [
  "unavailable",
  "timeout",
  "not_found",
  "conflict",
  "constraint",
  "invalid_input",
  "invalid_config",
  "unauthorized",
  "unknown",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** One problem in an input, with the path of the offending field. */
export interface InputIssue {
  readonly path: string;
  readonly message: string;
}

export interface CvErrorOptions {
  cause?: unknown;
  /** Offending fields, for `invalid_input` and `invalid_config`. */
  issues?: readonly InputIssue[];
  /** Constraint name for `constraint` errors, when the database gave one. */
  constraint?: string;
  /** Table the failing call was about. */
  table?: string;
}

/** Serialized form, for errors that cross a process boundary (desktop IPC, daemon status). */
export interface CvErrorJSON {
  name: "CentroVisionError";
  code: ErrorCode;
  message: string;
  issues?: readonly InputIssue[];
  constraint?: string;
  table?: string;
}

/**
 * The one error type that leaves a source. Messages start with the package
 * (`[adapter-postgres] …`) and never contain row values: patient data must
 * not reach logs through an error message.
 */
export class CvError extends Error {
  override readonly name = "CentroVisionError";
  readonly code: ErrorCode;
  readonly issues: readonly InputIssue[];
  readonly constraint: string | undefined;
  readonly table: string | undefined;

  constructor(code: ErrorCode, message: string, options: CvErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.issues = options.issues ?? [];
    this.constraint = options.constraint;
    this.table = options.table;
  }

  toJSON(): CvErrorJSON {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      ...(this.issues.length > 0 && { issues: this.issues }),
      ...(this.constraint !== undefined && { constraint: this.constraint }),
      ...(this.table !== undefined && { table: this.table }),
    };
  }

  static fromJSON(json: CvErrorJSON): CvError {
    const code = (ERROR_CODES as readonly string[]).includes(json.code) ? json.code : "unknown";
    const options: CvErrorOptions = {};
    if (json.issues) options.issues = json.issues;
    if (json.constraint !== undefined) options.constraint = json.constraint;
    if (json.table !== undefined) options.table = json.table;
    return new CvError(code, json.message, options);
  }
}

export function isCvError(error: unknown, code?: ErrorCode): error is CvError {
  return error instanceof CvError && (code === undefined || error.code === code);
}

/** True when the error says the tier did not answer, so another tier may serve the call. */
export function isTierDown(error: unknown): boolean {
  return isCvError(error) && (error.code === "unavailable" || error.code === "timeout");
}
