import { Observable, share } from "rxjs";
import * as z from "zod";
import type { SupabaseRealtimeClient } from "../supabase-peer.js";
import type { ChangeNotice } from "../sync-peer.js";

/** The private Realtime topic and event the cloud's change log broadcasts on (sql/0016). */
export const WAKE_TOPIC = "cv_sync";
export const WAKE_EVENT = "changes";

const UNKNOWN: ChangeNotice = Object.freeze({ origins: null });

/** A broadcast's payload, from the network: only its `origins` and `scopes` are read. */
const payloadSchema = z.object({
  origins: z.array(z.string()).max(1_000).nullable().optional(),
  scopes: z.array(z.string()).max(1_000).nullable().optional(),
});

function noticeOf(payload: unknown): ChangeNotice {
  const parsed = payloadSchema.safeParse(payload);
  if (!parsed.success) return UNKNOWN;
  const { origins, scopes } = parsed.data;
  return Object.freeze({ origins: origins ?? null, ...(scopes && { scopes }) });
}

export interface WakeFeedOptions {
  /** Wait before trying again when the cloud could not be reached to join. */
  retryMs: number;
  /** Told each time the channel is joined or lost. */
  onListening?: (listening: boolean) => void;
}

/**
 * Emits for each wake-up the cloud broadcasts, once when the joined channel is lost, and once
 * each time it is joined again after that (changes made meanwhile are not heard). Joined on the
 * first subscriber, left with the last. Never fails: a client without Realtime (`undefined`)
 * gives a feed that stays silent, and one that cannot be reached is tried again after
 * `retryMs`; once joined, supabase-js rejoins by itself.
 */
export function listenForWakeups(
  realtime: () => Promise<SupabaseRealtimeClient | undefined>,
  options: WakeFeedOptions,
): Observable<ChangeNotice> {
  return new Observable<ChangeNotice>((subscriber) => {
    let stopped = false;
    let retry: ReturnType<typeof setTimeout> | undefined;
    let leave: (() => void) | undefined;
    let joined = false;
    let listening = false;
    const setListening = (now: boolean) => {
      if (listening === now) return;
      listening = now;
      options.onListening?.(now);
    };
    const join = async () => {
      const client = await realtime();
      if (stopped || client === undefined) return;
      // supabase-js sends a private channel's first join before it has read the token.
      await client.realtime.setAuth();
      if (stopped) return;
      const channel = client
        .channel(WAKE_TOPIC, { config: { private: true } })
        .on("broadcast", { event: WAKE_EVENT }, (message) => subscriber.next(noticeOf(message.payload)))
        .subscribe((status) => {
          if (status !== "SUBSCRIBED") {
            // Lost (an error, a timeout, the socket closed): a change from now on is not heard.
            if (listening) subscriber.next(UNKNOWN);
            setListening(false);
            return;
          }
          // Joined again: what changed while the channel was down was not heard.
          if (joined) subscriber.next(UNKNOWN);
          joined = true;
          setListening(true);
        });
      leave = () => {
        client.removeChannel(channel).catch(() => {});
      };
    };
    const attempt = () => {
      join().catch(() => {
        if (stopped) return;
        retry = setTimeout(attempt, options.retryMs);
        retry.unref?.();
      });
    };
    attempt();
    return () => {
      stopped = true;
      setListening(false);
      clearTimeout(retry);
      leave?.();
    };
  }).pipe(share());
}
