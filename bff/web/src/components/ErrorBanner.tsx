// Shows a failed call: the server's message, any field violations not shown beside a field, the
// per-SKU shortages of INSUFFICIENT_STOCK and the blocked lines of a precondition failure, a
// countdown to when a rate-limited action may be tried again, and the trace id to quote to
// support.

import { useEffect, useState } from "react";
import { Code } from "@connectrpc/connect";
import type { UiError } from "../api/errors";
import { CartLineStatus } from "../gen/mercato/common/v1/enums_pb";
import { CART_LINE_LABEL } from "../lib/labels";

/** A precondition's description made readable: a cart line status name becomes its label. */
function describe(description: string): string {
  const status = CartLineStatus[description.replace(/^CART_LINE_STATUS_/, "") as keyof typeof CartLineStatus];
  return typeof status === "number" ? CART_LINE_LABEL[status] : description;
}

interface Props {
  error: UiError | null;
  /** A heading such as "Could not save the address". */
  title?: string;
  /** Field paths shown next to their inputs, so not repeated here. */
  shownFields?: readonly string[];
  /** Names a SKU of a stock shortage (e.g. "Mug — Colour: Red"); the SKU id otherwise. */
  skuName?: (skuId: string) => string | undefined;
}

export function ErrorBanner({ error, title, shownFields = [], skuName }: Props) {
  if (!error) return null;
  const others = error.fields.filter(
    (v) => !shownFields.some((f) => v.field === f || v.field.endsWith(`.${f}`)),
  );
  return (
    <div
      className="alert alert-error"
      role="alert"
      data-testid="error-banner"
      data-code={error.codeName}
      data-reason={error.reason ?? ""}
    >
      {title && <p className="alert-title">{title}</p>}
      <p className="alert-message" data-testid="error-message">
        {error.message}
      </p>
      {others.length > 0 && (
        <ul className="alert-list">
          {others.map((v) => (
            <li key={v.field}>
              <code>{v.field}</code>: {v.description}
            </li>
          ))}
        </ul>
      )}
      {error.shortages && error.shortages.length > 0 && (
        <ul className="alert-list" data-testid="error-shortages">
          {error.shortages.map((line) => (
            <li key={line.skuId}>
              {skuName?.(line.skuId) ?? <code>{line.skuId}</code>}: {line.requested.toString()} wanted,{" "}
              {line.available > 0n ? `only ${line.available.toString()} available` : "sold out"}
            </li>
          ))}
        </ul>
      )}
      {(() => {
        // Stock violations repeat the shortages above; the rest name what blocked the call.
        const shown = (error.preconditions ?? []).filter(
          (v) => v.subject && !(v.type === "STOCK" && (error.shortages?.length ?? 0) > 0),
        );
        return shown.length > 0 ? (
          <ul className="alert-list" data-testid="error-preconditions">
            {shown.map((v) => (
              <li key={`${v.type}-${v.subject}`} data-subject={v.subject}>
                {skuName?.(v.subject) ?? <code>{v.subject}</code>}: {describe(v.description)}
              </li>
            ))}
          </ul>
        ) : null;
      })()}
      {error.code === Code.ResourceExhausted && <RetryCountdown key={retryKey(error)} seconds={error.retryAfterSeconds ?? 1} />}
      {(error.traceId || error.requestId) && (
        <p className="alert-meta" data-testid="error-trace">
          For support, quote {error.traceId ? <>trace id <code>{error.traceId}</code></> : null}
          {error.traceId && error.requestId ? " and " : null}
          {error.requestId ? <>request id <code>{error.requestId}</code></> : null}.
        </p>
      )}
    </div>
  );
}

/** A new countdown for every refusal (the same error object keeps its countdown). */
const retryKeys = new WeakMap<UiError, number>();
let nextRetryKey = 0;
function retryKey(error: UiError): number {
  let key = retryKeys.get(error);
  if (key === undefined) {
    nextRetryKey += 1;
    key = nextRetryKey;
    retryKeys.set(error, key);
  }
  return key;
}

/** "You can try again in 12 s", counting down RetryInfo's delay, then "You can try again now". */
function RetryCountdown({ seconds }: { seconds: number }) {
  const [left, setLeft] = useState(seconds);
  useEffect(() => {
    const until = Date.now() + seconds * 1000;
    const timer = setInterval(() => {
      const remaining = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      setLeft(remaining);
      if (remaining === 0) clearInterval(timer);
    }, 1000);
    return () => clearInterval(timer);
  }, [seconds]);
  // Read once when shown (inside the alert); the ticking itself is not announced.
  return (
    <p className="alert-retry" data-testid="retry-after" data-seconds={seconds} aria-live="off">
      {left > 0 ? `You can try again in ${left} s.` : "You can try again now."}
    </p>
  );
}
