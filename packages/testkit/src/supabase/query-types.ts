/** The parsed form of the PostgREST query string this gateway answers. */

export type SelectItem = { readonly kind: "star" } | { readonly kind: "column"; readonly name: string };

export const OPERATORS = {
  eq: "=",
  neq: "<>",
  gt: ">",
  gte: ">=",
  lt: "<",
  lte: "<=",
} as const;
export type Operator = keyof typeof OPERATORS;

export type Operation =
  | { readonly kind: "op"; readonly op: Operator; readonly value: string }
  /** `values` is empty for `in.()`, which matches nothing. */
  | { readonly kind: "in"; readonly values: readonly string[] }
  | { readonly kind: "is_null" };

export interface Filter {
  readonly column: string;
  readonly negated: boolean;
  readonly operation: Operation;
}

export interface OrderTerm {
  readonly column: string;
  readonly direction?: "asc" | "desc";
  readonly nulls?: "first" | "last";
}
