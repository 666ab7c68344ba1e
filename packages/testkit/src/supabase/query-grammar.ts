/**
 * Parsers for PostgREST's query-string mini-languages (`select`, filters,
 * `or`/`and` trees, `order`, `columns`), following the grammar of
 * `src/PostgREST/ApiRequest/QueryParams.hs`. Failures carry the 1-based
 * column and a parsec-style "unexpected … expecting …" text, which the caller
 * turns into PostgREST's PGRST100 body.
 */
import { notImplemented } from "./errors.js";
import {
  type FieldRef,
  type FtsOperator,
  type JsonStep,
  type LogicTree,
  OPERATORS,
  type Operation,
  type Operator,
  type OrderTerm,
  type SelectItem,
} from "./query-types.js";

export class ParseFailure extends Error {
  constructor(
    readonly column: number,
    readonly details: string,
  ) {
    super(details);
  }
}

const IDENT_CHAR = /[\p{L}0-9_ $]/u;
const TRILEAN = ["null", "not_null", "unknown", "true", "false"] as const;

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

function atIndexEnd(c: Cursor): boolean {
  return c.done || [",", ".", "->", "::"].some((token) => c.input.startsWith(token, c.pos));
}

function jsonPath(c: Cursor): JsonStep[] {
  const steps: JsonStep[] = [];
  while (c.input.startsWith("->", c.pos)) {
    const arrow = c.eat("->>") ? "->>" : "->";
    if (arrow === "->") c.eat("->");
    const index = /^-?[0-9]+/.exec(c.input.slice(c.pos))?.[0];
    if (index !== undefined) {
      const start = c.pos;
      c.pos += index.length;
      if (atIndexEnd(c)) {
        steps.push({ arrow, key: index, isIndex: true });
        continue;
      }
      c.pos = start;
    }
    steps.push({ arrow, key: fieldName(c), isIndex: false });
  }
  return steps;
}

function field(c: Cursor): FieldRef {
  c.skipWs();
  const name = fieldName(c);
  const path = jsonPath(c);
  c.skipWs();
  return { name, path };
}

type ValueParser = (c: Cursor) => string;

const restOfInput: ValueParser = (c) => {
  const value = c.input.slice(c.pos);
  c.pos = c.input.length;
  return value;
};

/** Inside `or=(…)`: a quoted value, a `{…}` array literal, or text up to `,` or `)`. */
const logicValue: ValueParser = (c) => {
  const start = c.pos;
  if (c.peek() === '"') {
    const value = quotedValue(c);
    if (c.done || c.peek() === "," || c.peek() === ")") return value;
    c.pos = start;
  }
  const array = /^\{[^{}]*\}/.exec(c.input.slice(c.pos));
  if (array) {
    c.pos += array[0].length;
    return array[0];
  }
  return untilListEnd(c);
};

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

function operation(c: Cursor, value: ValueParser): Operation {
  if (c.eat("in.")) return { kind: "in", values: listValue(c) };
  if (c.eat("is.")) {
    const rest = c.input.slice(c.pos).toLowerCase();
    const found = TRILEAN.find((word) => rest.startsWith(word));
    if (!found) throw c.failure("null or trilean value (unknown, true, false)");
    c.pos += found.length;
    return { kind: "is", value: found };
  }
  const fts = /^(fts|plfts|phfts|wfts)(?:\(([\p{L}0-9_ $]+)\))?\./u.exec(c.input.slice(c.pos));
  if (fts) {
    c.pos += fts[0].length;
    const language = fts[2]?.trim();
    const op = fts[1] as FtsOperator;
    return language ? { kind: "fts", op, language, value: value(c) } : { kind: "fts", op, value: value(c) };
  }
  const dot = c.input.indexOf(".", c.pos);
  if (dot < 0) throw c.failure('"not" or operator (eq, gt, ...)');
  const name = c.input.slice(c.pos, dot);
  c.pos = dot + 1;
  if (!Object.hasOwn(OPERATORS, name))
    throw new ParseFailure(c.pos + 1, `unknown single value operator ${name}`);
  return { kind: "op", op: name as Operator, value: value(c) };
}

function opExpr(c: Cursor, value: ValueParser): { negated: boolean; operation: Operation } {
  const start = c.pos;
  let negatedFailure: ParseFailure | undefined;
  if (c.eat("not.")) {
    try {
      return { negated: true, operation: operation(c, value) };
    } catch (error) {
      if (!(error instanceof ParseFailure)) throw error;
      negatedFailure = error;
      c.pos = start;
    }
  }
  try {
    return { negated: false, operation: operation(c, value) };
  } catch (error) {
    if (!(error instanceof ParseFailure)) throw error;
    throw further(negatedFailure, error);
  }
}

function logicTree(c: Cursor): LogicTree {
  const start = c.pos;
  let filterFailure: ParseFailure | undefined;
  try {
    const target = field(c);
    c.expect(".");
    const { negated, operation: op } = opExpr(c, logicValue);
    return { kind: "filter", filter: { field: target, negated, operation: op } };
  } catch (error) {
    if (!(error instanceof ParseFailure)) throw error;
    filterFailure = error;
    c.pos = start;
  }
  const negated = c.eat("not.");
  const op = c.eat("and") ? "and" : c.eat("or") ? "or" : undefined;
  if (!op) throw further(filterFailure, c.failure("logic operator (and, or)"));
  c.skipWs();
  if (!c.eat("(")) throw further(filterFailure, c.failure('"("'));
  const children: LogicTree[] = [];
  do {
    c.skipWs();
    children.push(logicTree(c));
    c.skipWs();
  } while (c.eat(","));
  c.expect(")");
  c.skipWs();
  return { kind: "expr", negated, op, children };
}

function selectItem(c: Cursor): SelectItem {
  c.skipWs();
  if (c.input.startsWith("..", c.pos))
    throw notImplemented("Spreading embedded resources is not supported by the local gateway");
  if (c.eat("*")) return { kind: "star" };
  let name = fieldName(c);
  let alias: string | undefined;
  if (c.peek() === ":" && c.peek(1) !== ":") {
    c.pos++;
    alias = name;
    c.skipWs();
    name = fieldName(c);
  }
  if (c.peek() === "(" || c.peek() === "!") {
    throw notImplemented(`Embedding '${name}' is not supported by the local gateway; select plain columns`);
  }
  const path = jsonPath(c);
  const cast = c.eat("::") ? identifier(c, "letter or digit") : undefined;
  const item: SelectItem = { kind: "field", field: { name, path } };
  return { ...item, ...(alias !== undefined && { alias }), ...(cast !== undefined && { cast }) };
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
  return opExpr(new Cursor(input), restOfInput);
}

/** A filter's key: the column, with an optional JSON path (`data->>name`). */
export function parseFilterKey(input: string): FieldRef {
  return field(new Cursor(input));
}

/** `input` is the operator glued to the value, e.g. `or(a.eq.1,b.eq.2)` or `not.and(…)`. */
export function parseLogicTree(input: string): LogicTree {
  return logicTree(new Cursor(input));
}

export function parseOrder(input: string): OrderTerm[] {
  const c = new Cursor(input);
  const terms: OrderTerm[] = [];
  do {
    const target = field(c);
    if (c.peek() === "(") {
      throw notImplemented("Ordering by an embedded resource is not supported by the local gateway");
    }
    const direction = c.eat(".asc") ? "asc" : c.eat(".desc") ? "desc" : undefined;
    const nulls = c.eat(".nullsfirst") ? "first" : c.eat(".nullslast") ? "last" : undefined;
    if (c.peek() === ".") throw c.failure('"asc", "desc", "nullsfirst" or "nullslast"', c.pos + 1);
    terms.push({ field: target, ...(direction && { direction }), ...(nulls && { nulls }) });
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
