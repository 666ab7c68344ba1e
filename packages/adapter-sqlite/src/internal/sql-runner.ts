import type { Database, SqlValue } from "./sql-engine.js";

type Statement = ReturnType<Database["prepare"]>;

/**
 * Runs SQL with bound parameters over one sql.js database, keeping prepared statements for reuse
 * (a 1,000-row upsert prepares its statement once, not 1,000 times). Every value is bound, never
 * spliced into SQL text, so row data cannot change a statement or appear in an SQL error.
 */
export class SqlRunner {
  private readonly statements = new Map<string, Statement>();

  constructor(readonly db: Database) {}

  private prepared(sql: string): Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  /** Executes a statement that returns no rows. */
  run(sql: string, params: readonly SqlValue[] = []): void {
    const statement = this.prepared(sql);
    try {
      statement.run(params as SqlValue[]);
    } finally {
      statement.reset();
    }
  }

  /** All result rows as objects keyed by column name. */
  objects(sql: string, params: readonly SqlValue[] = []): Record<string, SqlValue>[] {
    const statement = this.prepared(sql);
    const rows: Record<string, SqlValue>[] = [];
    try {
      statement.bind(params as SqlValue[]);
      while (statement.step()) rows.push(statement.getAsObject());
    } finally {
      statement.reset();
    }
    return rows;
  }

  /**
   * Like `objects`, for one-off SQL (list queries vary with every filter): the statement is
   * freed afterwards instead of growing the cache without bound.
   */
  objectsOnce(sql: string, params: readonly SqlValue[] = []): Record<string, SqlValue>[] {
    const statement = this.db.prepare(sql);
    const rows: Record<string, SqlValue>[] = [];
    try {
      statement.bind(params as SqlValue[]);
      while (statement.step()) rows.push(statement.getAsObject());
    } finally {
      statement.free();
    }
    return rows;
  }

  /** The first column of the first row, or undefined when there is no row. */
  scalar(sql: string, params: readonly SqlValue[] = []): SqlValue | undefined {
    const statement = this.prepared(sql);
    try {
      statement.bind(params as SqlValue[]);
      return statement.step() ? statement.get()[0] : undefined;
    } finally {
      statement.reset();
    }
  }

  /** Runs statements without parameters (transaction control, pragmas). */
  exec(sql: string): void {
    this.db.exec(sql);
  }

  /** Frees the prepared statements and the database. */
  close(): void {
    for (const statement of this.statements.values()) statement.free();
    this.statements.clear();
    this.db.close();
  }
}
