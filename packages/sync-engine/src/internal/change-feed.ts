import type { ConnectionOptions } from "node:tls";
import postgres from "postgres";
import { Observable, share } from "rxjs";
import type { ChangeNotice } from "../sync-peer.js";

/** The channel the clinic server's capture notifies once per statement that logged a change (sql/functions/05). */
export const CHANGE_CHANNEL = "cv_sync_change";

export interface ChangeFeedOptions {
  url: string;
  ssl?: false | "require" | ConnectionOptions;
  /** Wait before listening again after the connection was lost or could not be made. */
  retryMs: number;
  connectTimeoutS: number;
  /** Told each time the feed starts or stops listening. */
  onListening?: (listening: boolean) => void;
}

/**
 * Emits when the node reports new changes: one LISTEN connection, opened on the first subscriber
 * and closed with the last. It also emits when it loses the connection and each time it listens
 * again after that, since a change made meanwhile is not heard (not the first time: whoever
 * subscribes reads the node then anyway). It never fails: a lost connection is listened again
 * after `retryMs`, so a server that is down costs one attempt per `retryMs` and stops nothing.
 *
 * Not the driver's own `listen()`: that re-listens from its connection's close handler at once,
 * without a pause, so a stopped server keeps it reconnecting as fast as connections are refused,
 * and its pool is not closed by ending the client that made it.
 */
export function listenForChanges(options: ChangeFeedOptions): Observable<ChangeNotice> {
  return new Observable<ChangeNotice>((subscriber) => {
    const notice: ChangeNotice = Object.freeze({ origins: null });
    let stopped = false;
    let retry: ReturnType<typeof setTimeout> | undefined;
    let listening = false;
    let listened = false;
    const setListening = (now: boolean) => {
      listening = now;
      options.onListening?.(now);
    };
    // `onnotify` is the driver's own hook (what its listen() uses), missing from its typings.
    const settings: postgres.Options<Record<string, never>> & { onnotify: () => void } = {
      max: 1,
      ...(options.ssl !== undefined && { ssl: options.ssl }),
      connect_timeout: options.connectTimeoutS,
      idle_timeout: 0,
      max_lifetime: null,
      backoff: () => 0,
      fetch_types: false,
      connection: { application_name: "centrovision-sync feed" },
      onnotice: () => {},
      onnotify: () => subscriber.next(notice),
      onclose: () => {
        if (!listening) return;
        // Lost: a change from now on is not heard until the feed listens again.
        subscriber.next(notice);
        again();
      },
    };
    const sql = postgres(options.url, settings);
    const again = () => {
      setListening(false);
      if (stopped || retry !== undefined) return;
      retry = setTimeout(() => {
        retry = undefined;
        listen();
      }, options.retryMs);
      retry.unref?.();
    };
    const listen = () => {
      sql.unsafe(`LISTEN ${CHANGE_CHANNEL}`).then(() => {
        if (stopped) return;
        setListening(true);
        // Listening again: what changed while nobody listened was not heard.
        if (listened) subscriber.next(notice);
        listened = true;
      }, again);
    };
    listen();
    return () => {
      stopped = true;
      setListening(false);
      clearTimeout(retry);
      sql.end({ timeout: 0 }).catch(() => {});
    };
  }).pipe(share());
}
