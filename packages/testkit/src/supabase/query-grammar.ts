/**
 * Parsers for the parts of PostgREST's query-string mini-languages this
 * gateway answers (`select`, filters, `order`, `columns`), following the
 * grammar of `src/PostgREST/ApiRequest/QueryParams.hs`. Failures carry the
 * 1-based column and a parsec-style "unexpected … expecting …" text, which the
 * caller turns into PostgREST's PGRST100 body. Valid PostgREST syntax for a
 * feature the gateway leaves out is refused with PGRST127, never misread.
 */
import { notImplemented } from "./errors.js";
import { OPERATORS, type Operation, type Operator, type OrderTerm, type SelectItem } from "./query-types.js";

export class ParseFailure extends Error {
  constructor(
    readonly column: number,
    readonly details: string,
  ) {
    super(details);
  }
}

const IDENT_CHAR = /[\p{L}0-9_ $]/u;
/** PostgREST's operators that this gateway does not answer (with or without an `(any)`/`(all)`/language suffix). */
const LEFT_OUT_OPERATORS = new Set([
  "like",
  "ilike",
  "match",
  "imatch",
  "isdistinct",
  "cs",
  "cd",
  "ov",
  "sl",
  "sr",
  "nxr",
  "nxl",
  "adj",
  "fts",
  "plfts",
  "phfts",
  "wfts",
]);

class Cursor {
  pos = 0;
  constructor(readonly input: string) {}

  get done(): boolean {
    return this.pos >= this.input.length;
  }
  peek(ahead = 0): string | undefined {
    return this.input[this.pos + ahead];
  }
  eat(token: string): boolean {
    if (!this.input.startsWith(token, this.pos)) return false;
    this.pos += token.length;
    return true;
  }
  skipWs(): void {
    while (this.peek() === " " || this.peek() === "\t") this.pos++;
  }
  failure(expecting: string, at = this.pos): ParseFailure {
    const found = this.input[at];
    const unexpected =
      found === undefined ? "unexpected end of input" : `unexpected ${JSON.stringify(found)}`;
    return new ParseFailure(at + 1, `${unexpected} expecting ${expecting}`);
  }
  expect(token: string): void {
    if (!this.eat(token)) throw this.failure(JSON.stringify(token));
  }
}

function further(a: ParseFailure | undefined, b: ParseFailure): ParseFailure {
  return a && a.column > b.column ? a : b;
}

function quotedValue(c: Cursor): string {
  c.expect('"');
  let value = "";
  while (c.peek() !== '"') {
    const ch = c.peek();
    if (ch === undefined) throw c.failure('"\\""');
    if (ch === "\\" && c.peek(1) !== undefined) c.pos++;
    value += c.input[c.pos];
    c.pos++;
  }
  c.pos++;
  return value;
}

function identifier(c: Cursor, expecting: string): string {
  const start = c.pos;
  while (!c.done && IDENT_CHAR.test(c.peek() ?? "")) c.pos++;
  if (c.pos === start) throw c.failure(expecting);
  return c.input.slice(start, c.pos).trim();
}

/** A column name: `"quoted \" name"` or `[letters digits _ $ space]` segments joined by `-`. */
function fieldName(c: Cursor): string {
  if (c.peek() === '"') return quotedValue(c);
  const parts = [identifier(c, "field name (* or [a..z0..9_$])")];
  while (c.peek() === "-" && c.peek(1) !== ">") {
    c.pos++;
    parts.push(identifier(c, "letter or digit"));
  }
  return parts.join("-");
}

/** A column name that may not be followed by a JSON path (`data->key`), which PostgREST allows. */
function column(c: Cursor): string {
  c.skipWs();
  const name = fieldName(c);
  if (c.input.startsWith("->", c.pos)) {
    throw notImplemented(`JSON paths ('${name}->…') are not supported by the local gateway`);
  }
  c.skipWs();
  return name;
}

function untilListEnd(c: Cursor): string {
  const start = c.pos;
  while (!c.done && c.peek() !== "," && c.peek() !== ")") c.pos++;
  return c.input.slice(start, c.pos);
}

function listValue(c: Cursor): string[] {
  c.skipWs();
  c.expect("(");
  c.skipWs();
  const values: string[] = [];
  let onlyEmpty = true;
  do {
    const start = c.pos;
    let value: string | undefined;
    if (c.peek() === '"') {
      value = quotedValue(c);
      if (!(c.peek() === "," || c.peek() === ")")) {
        c.pos = start;
        value = undefined;
      }
    }
    if (value === undefined) value = untilListEnd(c);
    if (value !== "" || c.input[start] === '"') onlyEmpty = false;
    values.push(value);
  } while (c.eat(","));
  c.skipWs();
  c.expect(")");
  c.skipWs();
  // `in.()` parses as one empty element; PostgREST treats it as the empty set.
  return onlyEmpty && values.length === 1 ? [] : values;
}

function operation(c: Cursor): Operation {
  if (c.eat("in.")) return { kind: "in", values: listValue(c) };
  if (c.eat("is.")) {
    const rest = c.input.slice(c.pos).toLowerCase();
    if (rest.startsWith("null")) {
      c.pos += "null".length;
      return { kind: "is_null" };
    }
    const trilean = ["not_null", "unknown", "true", "false"].find((word) => rest.startsWith(word));
    if (trilean)
      throw notImplemented(`'is.${trilean}' is not supported by the local gateway; only is.null is`);
    throw c.failure("null or trilean value (unknown, true, false)");
  }
  const dot = c.input.indexOf(".", c.pos);
  if (dot < 0) throw c.failure('"not" or operator (eq, gt, ...)');
  const name = c.input.slice(c.pos, dot);
  c.pos = dot + 1;
  if (Object.hasOwn(OPERATORS, name)) {
    const value = c.input.slice(c.pos);
    c.pos = c.input.length;
    return { kind: "op", op: name as Operator, value };
  }
  const [base = "", modifier] = name.split("(", 2);
  if (LEFT_OUT_OPERATORS.has(base) || (modifier !== undefined && Object.hasOwn(OPERATORS, base))) {
    throw notImplemented(`The filter operator '${name}' is not supported by the local gateway`);
  }
  throw new ParseFailure(c.pos + 1, `unknown single value operator ${name}`);
}

function opExpr(c: Cursor): { negated: boolean; operation: Operation } {
  const start = c.pos;
  let negatedFailure: ParseFailure | undefined;
  if (c.eat("not.")) {
    try {
      return { negated: true, operation: operation(c) };
    } catch (error) {
      if (!(error instanceof ParseFailure)) throw error;
      negatedFailure = error;
      c.pos = start;
    }
  }
  try {
    return { negated: false, operation: operation(c) };
  } catch (error) {
    if (!(error instanceof ParseFailure)) throw error;
    throw further(negatedFailure, error);
  }
}

function selectItem(c: Cursor): SelectItem {
  c.skipWs();
  if (c.input.startsWith("..", c.pos))
    throw notImplemented("Spreading embedded resources is not supported by the local gateway");
  if (c.eat("*")) return { kind: "star" };
  const name = fieldName(c);
  if (c.peek() === ":" && c.peek(1) !== ":") {
    throw notImplemented(
      `Renaming ('${name}:…') is not supported by the local gateway; select plain columns`,
    );
  }
  if (c.peek() === "(" || c.peek() === "!") {
    throw notImplemented(`Embedding '${name}' is not supported by the local gateway; select plain columns`);
  }
  if (c.input.startsWith("->", c.pos)) {
    throw notImplemented(`JSON paths ('${name}->…') are not supported by the local gateway`);
  }
  if (c.input.startsWith("::", c.pos)) {
    throw notImplemented(`Casts ('${name}::…') are not supported by the local gateway`);
  }
  return { kind: "column", name };
}

function endOfList(c: Cursor, expecting: string): boolean {
  c.skipWs();
  if (c.eat(",")) return false;
  if (!c.done) throw c.failure(expecting);
  return true;
}

export function parseSelect(input: string): SelectItem[] {
  const c = new Cursor(input);
  const items: SelectItem[] = [];
  do items.push(selectItem(c));
  while (!endOfList(c, '"->>", "->", "::", "," or end of input'));
  return items;
}

/** A filter's value part, e.g. `not.in.(1,2)`. */
export function parseFilterValue(input: string): { negated: boolean; operation: Operation } {
  return opExpr(new Cursor(input));
}

/** A filter's key: the column. Like PostgREST, text after the name is ignored. */
export function parseFilterKey(input: string): string {
  return column(new Cursor(input));
}

export function parseOrder(input: string): OrderTerm[] {
  const c = new Cursor(input);
  const terms: OrderTerm[] = [];
  do {
    const name = column(c);
    const direction = c.eat(".asc") ? "asc" : c.eat(".desc") ? "desc" : undefined;
    const nulls = c.eat(".nullsfirst") ? "first" : c.eat(".nullslast") ? "last" : undefined;
    if (c.peek() === ".") throw c.failure('"asc", "desc", "nullsfirst" or "nullslast"', c.pos + 1);
    terms.push({ column: name, ...(direction && { direction }), ...(nulls && { nulls }) });
  } while (!endOfList(c, 'delimiter (.), "," or end of input'));
  return terms;
}

/** `columns=` and `on_conflict=`: a comma list of (optionally quoted) names. */
export function parseColumnList(input: string): string[] {
  const c = new Cursor(input);
  const names: string[] = [];
  do {
    c.skipWs();
    names.push(fieldName(c));
  } while (!endOfList(c, '"," or end of input'));
  return names;
}
