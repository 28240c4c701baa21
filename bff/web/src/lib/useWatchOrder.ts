// Follows one order live through OrderService.WatchOrder (gRPC-Web server streaming): the first
// message is the current state, then every change. The BFF ends a watch OK only after a terminal
// state; it ends it UNAVAILABLE when the watch reached its maximum duration, the BFF is draining
// or the order service went away — then this watches again (the new watch's first message
// carries the latest state, so nothing is missed), backing off while nothing gets through.

import { useCallback, useEffect, useRef, useState } from "react";
import { Code } from "@connectrpc/connect";
import { orderClient, refreshSession } from "../api/client";
import { toUiError, type UiError } from "../api/errors";
import type { Order } from "../gen/mercato/bff/v1/order_types_pb";
import type { OrderStatus } from "../gen/mercato/common/v1/enums_pb";
import { isTerminal } from "./labels";

/** Where the watch is: first call, receiving, between two watches, done, or given up. */
export type WatchStatus = "connecting" | "live" | "reconnecting" | "ended" | "failed";

export interface WatchedOrder {
  order: Order | undefined;
  status: WatchStatus;
  /** The state in the last message the stream itself delivered (what "live" has shown). */
  streamed: OrderStatus | undefined;
  /** How many watches this page opened for the order (1 until a cut watch is replaced). */
  watches: number;
  /** Why the watch gave up (NOT_FOUND, …); null otherwise. */
  error: UiError | null;
  /** Shows an order another call returned (e.g. CancelOrder) unless the watch already has newer. */
  apply: (order: Order | undefined) => void;
  /** Starts watching again after a failure. */
  retry: () => void;
}

/** Ends that mean "watch again": the stream was cut, not refused. */
const RETRYABLE = new Set<Code>([Code.Unavailable, Code.DeadlineExceeded, Code.Aborted, Code.Unknown]);

/** The least pause between two watches (so a server that cuts every watch at once is not hammered). */
const MIN_GAP_MS = 250;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Whether `next` is at least as recent as `current` (orders only move forward). */
function isNewer(next: Order, current: Order | undefined): boolean {
  if (!current) return true;
  if (next.history.length !== current.history.length) return next.history.length > current.history.length;
  const a = next.updateTime;
  const b = current.updateTime;
  if (!a || !b) return true;
  return a.seconds > b.seconds || (a.seconds === b.seconds && a.nanos >= b.nanos);
}

export function useWatchOrder(orderId: string): WatchedOrder {
  const [order, setOrder] = useState<Order | undefined>(undefined);
  const [status, setStatus] = useState<WatchStatus>("connecting");
  const [error, setError] = useState<UiError | null>(null);
  const [streamed, setStreamed] = useState<OrderStatus | undefined>(undefined);
  const [watches, setWatches] = useState(0);
  const [generation, setGeneration] = useState(0);
  const latest = useRef<Order | undefined>(undefined);
  const watched = useRef(orderId);

  const apply = useCallback((next: Order | undefined) => {
    if (next && isNewer(next, latest.current)) {
      latest.current = next;
      setOrder(next);
    }
  }, []);

  useEffect(() => {
    const controller = new AbortController();
    const { signal } = controller;
    if (watched.current !== orderId) {
      // Another order: forget the previous one (a retry of the same order keeps what it showed).
      watched.current = orderId;
      latest.current = undefined;
      setOrder(undefined);
      setStreamed(undefined);
      setWatches(0);
    }
    setStatus("connecting");
    setError(null);

    (async () => {
      let failures = 0;
      for (;;) {
        let received = false;
        let retryAfterMs: number | undefined;
        setWatches((n) => n + 1);
        try {
          for await (const message of orderClient.watchOrder({ orderId }, { signal })) {
            if (signal.aborted) return;
            received = true;
            apply(message.order);
            if (message.order) setStreamed(message.order.status);
            setStatus("live");
            setError(null);
          }
          if (signal.aborted) return;
          if (latest.current && isTerminal(latest.current.status)) {
            setStatus("ended");
            return;
          }
          // Ended OK before a terminal state (not what the BFF does, but harmless): watch again.
        } catch (thrown) {
          if (signal.aborted) return;
          const failure = toUiError(thrown);
          if (failure.code === Code.Unauthenticated) {
            // The access token expired while the stream was open: refresh once, then watch again.
            if (!(await refreshSession())) {
              setError(failure);
              setStatus("failed");
              return;
            }
          } else if (!RETRYABLE.has(failure.code)) {
            setError(failure);
            setStatus("failed");
            return;
          }
          if (failure.retryAfterSeconds !== undefined) retryAfterMs = failure.retryAfterSeconds * 1000;
        }
        if (signal.aborted) return;
        // A terminal state that arrived just before the cut: nothing more will change.
        if (latest.current && isTerminal(latest.current.status)) {
          setStatus("ended");
          return;
        }
        // A watch that delivered the state was healthy (cut by its maximum duration or a
        // restart): watch again at once. One that got nothing through backs off, up to 10 s.
        failures = received ? 0 : failures + 1;
        setStatus("reconnecting");
        const backoff = failures === 0 ? MIN_GAP_MS : Math.min(10_000, 500 * 2 ** Math.min(failures - 1, 5));
        await sleep(Math.max(retryAfterMs ?? 0, backoff), signal);
        if (signal.aborted) return;
      }
    })();

    return () => controller.abort();
  }, [orderId, generation, apply]);

  const retry = useCallback(() => setGeneration((g) => g + 1), []);
  return { order, status, streamed, watches, error, apply, retry };
}
