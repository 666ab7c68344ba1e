/**
 * Supabase Auth's error answers (supabase/auth `internal/api/errors.go`, `apierrors/`), which
 * auth-js turns into `AuthApiError` (`lib/fetch.ts`, `handleError`). A request that sends
 * `X-Supabase-Api-Version: 2024-01-01` or later (auth-js always does) gets `{code, message}`
 * with `code` the error code and the version echoed in a header, which auth-js needs to read
 * `code`; an older or absent version gets the legacy `{code: <status>, error_code, msg}`.
 */
import { randomUUID } from "node:crypto";

/** An `HTTPError`: status, error code (`invalid_credentials`, …) and message. */
export class AuthFailure extends Error {
  override readonly name = "AuthFailure";

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** `weak_password` failures carry their reasons. */
    readonly weakPasswordReasons?: readonly string[],
  ) {
    super(message);
  }
}

/** What the Auth server answers; `body` is absent for 204. */
export interface AuthReply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
}

export const API_VERSION_HEADER = "X-Supabase-Api-Version";
const API_VERSION_2024 = "2024-01-01";

/**
 * GoTrue's `DetermineClosestAPIVersion`: a `YYYY-MM-DD` date on or after 2024-01-01 selects
 * that version; anything else (absent, earlier, unparsable) the initial one.
 */
export function apiVersionOf(header: string | undefined): typeof API_VERSION_2024 | undefined {
  if (header === undefined || !/^\d{4}-\d{2}-\d{2}$/.test(header)) return undefined;
  const date = new Date(`${header}T00:00:00Z`);
  if (Number.isNaN(date.getTime()) || date.toISOString().slice(0, 10) !== header) return undefined;
  return header >= API_VERSION_2024 ? API_VERSION_2024 : undefined;
}

export function json(status: number, value: unknown, headers: Record<string, string> = {}): AuthReply {
  return {
    status,
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(value),
  };
}

/** The answer for a failure, in the shape the request's API version selects. */
export function renderFailure(failure: AuthFailure, apiVersion: string | undefined): AuthReply {
  const headers: Record<string, string> = { "x-sb-error-code": failure.code };
  const weak =
    failure.weakPasswordReasons === undefined
      ? {}
      : { weak_password: { reasons: failure.weakPasswordReasons } };
  if (apiVersion === API_VERSION_2024) {
    headers[API_VERSION_HEADER] = API_VERSION_2024;
    return json(failure.status, { code: failure.code, message: failure.message, ...weak }, headers);
  }
  return json(
    failure.status,
    {
      code: failure.status,
      error_code: failure.code,
      msg: failure.message,
      ...(failure.status >= 500 && { error_id: randomUUID() }),
      ...weak,
    },
    headers,
  );
}

/** GoTrue's answer to an error it did not foresee; it says nothing about the request. */
export function unexpectedFailure(): AuthFailure {
  return new AuthFailure(
    500,
    "unexpected_failure",
    "Unexpected failure, please check server logs for more information",
  );
}

export const invalidCredentials = () =>
  new AuthFailure(400, "invalid_credentials", "Invalid login credentials");

function badJson(reason: string): AuthFailure {
  return new AuthFailure(400, "bad_json", `Could not parse request body as JSON: ${reason}`);
}

/** GoTrue's `retrieveRequestParams`: the body must be JSON (an empty one is not), else 400 `bad_json`. */
export function parseJsonBody(body: string | undefined): Record<string, unknown> {
  if (body === undefined || body.trim() === "") throw badJson("unexpected end of JSON input");
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw badJson("invalid character in JSON input");
  }
  if (value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw badJson("json: cannot unmarshal into Go value of type struct");
  }
  return value as Record<string, unknown>;
}

/** A string field of a parsed body: absent or null is undefined; another type is `bad_json`, as Go's decoder says. */
export function stringField(body: Record<string, unknown>, name: string): string | undefined {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") {
    throw badJson(`json: cannot unmarshal ${typeof value} into Go struct field .${name} of type string`);
  }
  return value;
}

/** An object field (metadata): absent or null is undefined. */
export function objectField(
  body: Record<string, unknown>,
  name: string,
): Record<string, unknown> | undefined {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw badJson(
      `json: cannot unmarshal ${typeof value} into Go struct field .${name} of type map[string]interface {}`,
    );
  }
  return value as Record<string, unknown>;
}
