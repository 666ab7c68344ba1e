/**
 * The `realtime` schema a hosted project has before any migration of ours runs, as Supabase
 * Realtime's own tenant migrations leave it (supabase/realtime `lib/realtime/tenants/repo/
 * migrations`, up to `20260707120000_restrict_realtime_schema`), where it matters to Broadcast
 * from the database:
 *   - `realtime.messages` (topic, extension, payload, event, private, updated_at, inserted_at, id),
 *     partitioned by day on `inserted_at`, row-level security on, owned by
 *     `supabase_realtime_admin`; SELECT, INSERT and UPDATE granted to `postgres` and the API roles;
 *   - `realtime.topic()`, `realtime.send(payload, event, topic, private default true)` and
 *     `realtime.broadcast_changes(...)`, their latest definitions;
 *   - `postgres` is a member of `supabase_realtime_admin`, so the project's migrations can create
 *     policies on `realtime.messages` (hosted projects let it through supautils' policy grants).
 * Not created: Postgres Changes' objects (`realtime.subscription`, `apply_rls`, …), `send_binary`
 * and the `binary_payload` column.
 *
 * One addition of ours: an AFTER INSERT trigger that notifies the local Realtime of each committed
 * row, standing in for the logical replication of `realtime.messages` hosted Realtime uses (which
 * would need `wal_level = logical` on a server the caller may have started).
 */
import postgres, { type Sql } from "postgres";

/** The NOTIFY channel the trigger speaks on; its payload is the new row's id. */
export const MESSAGES_CHANNEL = "cv_local_realtime_messages";

/** Cluster-wide, so run in the maintenance database under the shape's advisory lock. */
const REALTIME_ROLES_SQL = `
  do $$
  begin
    if not exists (select from pg_roles where rolname = 'supabase_realtime_admin') then
      create role supabase_realtime_admin nologin noinherit noreplication;
    end if;
  end
  $$;
  grant supabase_realtime_admin to postgres;`;

/** Per database; idempotent, so a reused data directory keeps working. */
const REALTIME_SCHEMA_SQL = `
  create schema if not exists realtime;
  grant usage on schema realtime to postgres, anon, authenticated, service_role;

  create table if not exists realtime.messages (
    topic text not null,
    extension text not null,
    payload jsonb,
    event text,
    private boolean default false,
    updated_at timestamp not null default now(),
    inserted_at timestamp not null default now(),
    id uuid not null default gen_random_uuid(),
    primary key (id, inserted_at)
  ) partition by range (inserted_at);
  create index if not exists messages_inserted_at_topic_index on realtime.messages
    (inserted_at desc, topic) where extension = 'broadcast' and private is true;
  alter table realtime.messages enable row level security;
  alter table realtime.messages owner to supabase_realtime_admin;
  grant select, insert, update on realtime.messages to postgres, anon, authenticated, service_role;

  create or replace function realtime.topic() returns text language sql stable as $$
    select nullif(current_setting('realtime.topic', true), '')::text;
  $$;

  create or replace function realtime.send(payload jsonb, event text, topic text, private boolean default true)
  returns void language plpgsql as $$
  declare
    generated_id uuid;
    final_payload jsonb;
  begin
    begin
      generated_id := gen_random_uuid();

      -- Check if payload has an 'id' key, if not, add the generated UUID
      if payload ? 'id' then
        final_payload := payload;
      else
        final_payload := jsonb_set(payload, '{id}', to_jsonb(generated_id));
      end if;

      -- Set the topic configuration
      execute format('SET LOCAL realtime.topic TO %L', topic);

      insert into realtime.messages (id, payload, event, topic, private, extension)
      values (generated_id, final_payload, event, topic, private, 'broadcast');
    exception
      when others then
        raise warning 'WarnSendingBroadcastMessage: %', sqlerrm;
    end;
  end;
  $$;

  create or replace function realtime.broadcast_changes(topic_name text, event_name text, operation text,
    table_name text, table_schema text, new record, old record, level text default 'ROW')
  returns void language plpgsql as $$
  declare
    -- Declare a variable to hold the JSONB representation of the row
    row_data jsonb := '{}'::jsonb;
  begin
    if level = 'STATEMENT' then
      raise exception 'function can only be triggered for each row, not for each statement';
    end if;
    -- Check the operation type and handle accordingly
    if operation = 'INSERT' or operation = 'UPDATE' or operation = 'DELETE' then
      row_data := jsonb_build_object('old_record', old, 'record', new, 'operation', operation,
        'table', table_name, 'schema', table_schema);
      perform realtime.send(row_data, event_name, topic_name);
    else
      raise exception 'Unexpected operation type: %', operation;
    end if;
  exception
    when others then
      raise exception 'Failed to process the row: %', sqlerrm;
  end;
  $$;

  alter function realtime.topic() owner to supabase_realtime_admin;
  alter function realtime.send(jsonb, text, text, boolean) owner to supabase_realtime_admin;
  alter function realtime.broadcast_changes(text, text, text, text, text, record, record, text)
    owner to supabase_realtime_admin;
  grant execute on function realtime.topic(), realtime.send(jsonb, text, text, boolean),
    realtime.broadcast_changes(text, text, text, text, text, record, record, text)
    to postgres, anon, authenticated, service_role;

  -- Ours: the local Realtime fetches each committed row it is told about (a NOTIFY payload is
  -- capped at 8000 bytes, a broadcast payload is not). Rolled-back rows, such as the
  -- authorization probes, never notify.
  create or replace function realtime.cv_local_notify_message() returns trigger language plpgsql as $$
  begin
    perform pg_notify('${MESSAGES_CHANNEL}', new.id::text);
    return null;
  end
  $$;
  alter function realtime.cv_local_notify_message() owner to supabase_realtime_admin;
  revoke execute on function realtime.cv_local_notify_message() from public;
  do $$
  begin
    if not exists (select from pg_trigger where tgname = 'cv_local_notify_message'
        and tgrelid = 'realtime.messages'::regclass) then
      create trigger cv_local_notify_message after insert on realtime.messages
        for each row execute function realtime.cv_local_notify_message();
    end if;
  end
  $$;`;

/**
 * Creates the daily partitions of `realtime.messages` from yesterday to three days ahead (UTC)
 * that are missing, as hosted Realtime does when it connects and from its janitor: without one
 * for today, `realtime.send` only raises a warning and the message is lost. Run as the superuser.
 */
export async function ensureMessagePartitions(sql: Sql): Promise<void> {
  const missing = await sql<{ name: string; day: string; next: string }[]>`
    select 'messages_' || to_char(day, 'YYYY_MM_DD') as name, day::text as day, (day + 1)::text as next
    from generate_series(-1, 3) offset_days,
      lateral (select (now() at time zone 'utc')::date + offset_days as day) days
    where to_regclass('realtime.messages_' || to_char(day, 'YYYY_MM_DD')) is null`;
  for (const { name, day, next } of missing) {
    // DDL takes no parameters; name, day and next are dates rendered by PostgreSQL above.
    await sql.begin(async (tx) => {
      await tx.unsafe(
        `create table if not exists realtime.${name} partition of realtime.messages for values from ('${day}') to ('${next}')`,
      );
      await tx.unsafe(`alter table realtime.${name} owner to supabase_realtime_admin`);
    });
  }
}

/**
 * Gives a database that already has the Supabase shape (shape.ts) the `realtime` schema, with
 * its partitions for the coming days. Both URLs are the superuser's.
 */
export async function applyRealtimeShape(maintenanceUrl: string, databaseUrl: string): Promise<void> {
  const maintenance = postgres(maintenanceUrl, { max: 1, onnotice: () => {} });
  try {
    await maintenance.begin(async (tx) => {
      // The lock shape.ts takes for the other roles: stacks starting together on one cluster.
      await tx`select pg_advisory_xact_lock(hashtext('cv_local_supabase_roles'))`;
      await tx.unsafe(REALTIME_ROLES_SQL);
    });
  } finally {
    await maintenance.end();
  }
  const database = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    await database.begin((tx) => tx.unsafe(REALTIME_SCHEMA_SQL));
    await ensureMessagePartitions(database);
  } finally {
    await database.end();
  }
}
