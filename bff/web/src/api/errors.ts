// Turns a failed call into what the UI shows: the server's message, field violations (keyed by
// field path), a retry delay for RESOURCE_EXHAUSTED, and the trace id to quote to support.

import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  PreconditionFailureSchema,
  RequestInfoSchema,
  RetryInfoSchema,
} from "../gen/google/rpc/error_details_pb";
import { StockShortageSchema } from "../gen/mercato/common/v1/errors_pb";

/** A failure as the UI shows it. */
export interface UiError {
  /** gRPC status code. */
  code: Code;
  /** The status name, e.g. "INVALID_ARGUMENT". */
  codeName: string;
  /** What to tell the user. */
  message: string;
  /** ErrorInfo reason, e.g. "VALIDATION_FAILED". */
  reason: string | undefined;
  /** Field path → message, from BadRequest. */
  fields: ReadonlyArray<{ field: string; description: string }>;
  /** The trace id of the failed request (x-trace-id). */
  traceId: string | undefined;
  /** The request id (x-request-id or RequestInfo). */
  requestId: string | undefined;
  /** Seconds to wait before retrying (RetryInfo). */
  retryAfterSeconds: number | undefined;
  /** ErrorInfo metadata, e.g. the held coupon's `user_coupon_id` of COUPON_ALREADY_CLAIMED. */
  metadata?: Readonly<Record<string, string>>;
  /** Per-SKU shortages of INSUFFICIENT_STOCK (StockShortage), sorted by SKU id. */
  shortages?: ReadonlyArray<{ skuId: string; requested: bigint; available: bigint }>;
  /** PreconditionFailure violations, e.g. CART_NOT_CHECKOUTABLE's blocked lines (type CART_LINE). */
  preconditions?: ReadonlyArray<{ type: string; subject: string; description: string }>;
}

function codeName(code: Code): string {
  return (Code[code] ?? "UNKNOWN").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

function firstHeader(headers: Headers, name: string): string | undefined {
  // Headers and trailers are merged into the error's metadata, so a value sent in both reads
  // as "a, a".
  const value = headers.get(name);
  return value ? value.split(",")[0]?.trim() || undefined : undefined;
}

/** Converts anything thrown by a client call. */
export function toUiError(thrown: unknown): UiError {
  const error = ConnectError.from(thrown);
  const info = error.findDetails(ErrorInfoSchema)[0];
  const requestInfo = error.findDetails(RequestInfoSchema)[0];
  const retry = error.findDetails(RetryInfoSchema)[0];
  const fields = error
    .findDetails(BadRequestSchema)
    .flatMap((bad) => bad.fieldViolations)
    .map((v) => ({ field: v.field, description: v.localizedMessage?.message || v.description }));
  const retryAfterSeconds = retry?.retryDelay
    ? Math.max(1, Math.ceil(Number(retry.retryDelay.seconds) + retry.retryDelay.nanos / 1e9))
    : undefined;

  let message = error.rawMessage;
  // A call that never reached the BFF (offline, CORS, BFF down) has no server message.
  const unreachable =
    !error.metadata.has("x-request-id") &&
    !error.metadata.has("grpc-status") &&
    (error.code === Code.Unknown || error.code === Code.Unavailable || error.code === Code.Internal);
  if (unreachable) {
    message = "The shop could not be reached. Check your connection and try again.";
  } else if (error.code === Code.ResourceExhausted) {
    // A rate limit: the server's words ("write requests over budget") are for operators; the
    // shopper is told to wait (ErrorBanner counts down RetryInfo's delay).
    message = "You're going a little fast: too many requests in a short time. Please wait a moment and try again.";
  } else if (!message) {
    message = "Something went wrong. Please try again.";
  }
  return {
    code: error.code,
    codeName: codeName(error.code),
    message,
    reason: info?.reason,
    fields,
    traceId: firstHeader(error.metadata, "x-trace-id"),
    requestId: firstHeader(error.metadata, "x-request-id") ?? requestInfo?.requestId,
    retryAfterSeconds,
    metadata: info ? { ...info.metadata } : {},
    shortages: error
      .findDetails(StockShortageSchema)
      .flatMap((shortage) => shortage.lines)
      .map((line) => ({
        skuId: line.skuId,
        requested: line.requestedQuantity,
        available: line.availableQuantity,
      })),
    preconditions: error
      .findDetails(PreconditionFailureSchema)
      .flatMap((failure) => failure.violations)
      .map((v) => ({ type: v.type, subject: v.subject, description: v.description })),
  };
}

/**
 * Whether the call may have taken effect or may succeed unchanged on a retry (the network or the
 * server failed, or the same request is still running) — as opposed to a definitive refusal.
 * A form keeps its idempotency key across the former and takes a new one after the latter, so a
 * corrected retry is judged afresh instead of replaying the refusal.
 */
export function isRetryable(error: UiError): boolean {
  return (
    error.code === Code.Unavailable ||
    error.code === Code.Unknown ||
    error.code === Code.DeadlineExceeded ||
    error.code === Code.Aborted ||
    error.code === Code.Internal ||
    error.code === Code.Canceled ||
    error.code === Code.ResourceExhausted
  );
}

/** The violation for a form field: its exact path, or a path that ends with it. */
export function fieldError(error: UiError | null, path: string): string | undefined {
  if (!error) return undefined;
  const hit = error.fields.find((v) => v.field === path || v.field.endsWith(`.${path}`));
  return hit?.description;
}

/** Whether the error is the given status. */
export function isCode(error: unknown, code: Code): boolean {
  return ConnectError.from(error).code === code;
}
