/** The parsed form of a PostgREST query string. */

export interface JsonStep {
  readonly arrow: "->" | "->>";
  readonly key: string;
  readonly isIndex: boolean;
}

export interface FieldRef {
  readonly name: string;
  readonly path: readonly JsonStep[];
}

export type SelectItem =
  | { readonly kind: "star" }
  | { readonly kind: "field"; readonly field: FieldRef; readonly alias?: string; readonly cast?: string };

export const OPERATORS = {
  eq: "=",
  neq: "<>",
  gt: ">",
  gte: ">=",
  lt: "<",
  lte: "<=",
  like: "LIKE",
  ilike: "ILIKE",
  match: "~",
  imatch: "~*",
  cs: "@>",
  cd: "<@",
  ov: "&&",
  sl: "<<",
  sr: ">>",
  nxr: "&<",
  nxl: "&>",
  adj: "-|-",
} as const;
export type Operator = keyof typeof OPERATORS;

export const FTS_OPERATORS = ["fts", "plfts", "phfts", "wfts"] as const;
export type FtsOperator = (typeof FTS_OPERATORS)[number];

export type Operation =
  | { readonly kind: "op"; readonly op: Operator; readonly value: string }
  /** `values` is empty for `in.()`, which matches nothing. */
  | { readonly kind: "in"; readonly values: readonly string[] }
  | { readonly kind: "is"; readonly value: "null" | "not_null" | "true" | "false" | "unknown" }
  | { readonly kind: "fts"; readonly op: FtsOperator; readonly language?: string; readonly value: string };

export interface Filter {
  readonly field: FieldRef;
  readonly negated: boolean;
  readonly operation: Operation;
}

export type LogicTree =
  | { readonly kind: "filter"; readonly filter: Filter }
  | {
      readonly kind: "expr";
      readonly negated: boolean;
      readonly op: "and" | "or";
      readonly children: readonly LogicTree[];
    };

export interface OrderTerm {
  readonly field: FieldRef;
  readonly direction?: "asc" | "desc";
  readonly nulls?: "first" | "last";
}
