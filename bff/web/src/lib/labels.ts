// What people read for the API's enums and times: order and cart-line states, payment methods,
// coupon rules. The wire names stay available (data-* attributes) for tests and support.

import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { Coupon } from "../gen/mercato/bff/v1/coupon_types_pb";
import {
  CartLineStatus,
  CouponKind,
  LedgerEntryKind,
  OrderCancellationReason,
  OrderStatus,
  PaymentMethod,
  PaymentStatus,
  UserCouponStatus,
} from "../gen/mercato/common/v1/enums_pb";
import { formatMoney } from "./money";

export const ORDER_STATUS_LABEL: Record<OrderStatus, string> = {
  [OrderStatus.UNSPECIFIED]: "Unknown",
  [OrderStatus.PENDING]: "Pending",
  [OrderStatus.AWAITING_PAYMENT]: "Awaiting payment",
  [OrderStatus.PAID]: "Paid",
  [OrderStatus.SHIPPED]: "Shipped",
  [OrderStatus.FINISHED]: "Delivered",
  [OrderStatus.CANCELLED]: "Cancelled",
  [OrderStatus.EXPIRED]: "Expired",
};

/** The order states after which nothing changes (a watch ends there). */
export function isTerminal(status: OrderStatus): boolean {
  return (
    status === OrderStatus.FINISHED || status === OrderStatus.CANCELLED || status === OrderStatus.EXPIRED
  );
}

/** The states a buyer may still cancel from without a refund. */
export function isUnpaid(status: OrderStatus): boolean {
  return status === OrderStatus.PENDING || status === OrderStatus.AWAITING_PAYMENT;
}

export const CANCELLATION_LABEL: Record<OrderCancellationReason, string> = {
  [OrderCancellationReason.UNSPECIFIED]: "",
  [OrderCancellationReason.USER_REQUESTED]: "cancelled by you",
  [OrderCancellationReason.ADMIN_REQUESTED]: "cancelled by the shop",
  [OrderCancellationReason.PAYMENT_FAILED]: "the payment failed",
};

export const PAYMENT_METHOD_LABEL: Record<PaymentMethod, string> = {
  [PaymentMethod.UNSPECIFIED]: "—",
  [PaymentMethod.SANDBOX]: "Sandbox payment (test)",
  [PaymentMethod.POINTS]: "Wallet points",
  [PaymentMethod.STRIPE]: "Card (Stripe)",
};

export const PAYMENT_STATUS_LABEL: Record<PaymentStatus, string> = {
  [PaymentStatus.UNSPECIFIED]: "Unknown",
  [PaymentStatus.PENDING]: "Being prepared",
  [PaymentStatus.REQUIRES_ACTION]: "Waiting for you to pay",
  [PaymentStatus.PROCESSING]: "Processing",
  [PaymentStatus.SUCCEEDED]: "Paid",
  [PaymentStatus.FAILED]: "Failed",
  [PaymentStatus.CANCELLED]: "Cancelled",
  [PaymentStatus.PARTIALLY_REFUNDED]: "Partly refunded",
  [PaymentStatus.REFUNDED]: "Refunded",
};

export const LEDGER_KIND_LABEL: Record<LedgerEntryKind, string> = {
  [LedgerEntryKind.UNSPECIFIED]: "Movement",
  [LedgerEntryKind.CHARGE]: "Points added",
  [LedgerEntryKind.SPEND]: "Paid an order",
  [LedgerEntryKind.REFUND]: "Refund",
};

export const CART_LINE_LABEL: Record<CartLineStatus, string> = {
  [CartLineStatus.UNSPECIFIED]: "Unknown",
  [CartLineStatus.AVAILABLE]: "Available",
  [CartLineStatus.OVER_STOCK]: "Not enough stock",
  [CartLineStatus.OUT_OF_STOCK]: "Out of stock",
  [CartLineStatus.INVALID]: "No longer sold",
};

export const USER_COUPON_LABEL: Record<UserCouponStatus, string> = {
  [UserCouponStatus.UNSPECIFIED]: "Unknown",
  [UserCouponStatus.AVAILABLE]: "Available",
  [UserCouponStatus.USED]: "Used",
  [UserCouponStatus.EXPIRED]: "Expired",
};

/** "¥300 off" / "10% off (up to ¥1,000)", and the minimum order when there is one. */
export function couponRule(coupon: Coupon | undefined): string {
  if (!coupon) return "";
  const off =
    coupon.kind === CouponKind.PERCENT
      ? `${coupon.percentOff}% off${coupon.maxDiscount ? ` (up to ${formatMoney(coupon.maxDiscount)})` : ""}`
      : `${formatMoney(coupon.fixedDiscount)} off`;
  const minimum =
    coupon.minimumOrderAmount && coupon.minimumOrderAmount.amountMinor > 0n
      ? ` orders of ${formatMoney(coupon.minimumOrderAmount)} or more`
      : " any order";
  return `${off}${minimum}`;
}

/**
 * The discount a coupon gives on `subtotalMinor` by the order service's rules (FIXED: the amount,
 * at most the subtotal; PERCENT: floored, capped), or null when the minimum is not met. Only an
 * estimate for display: the order service computes what is charged.
 */
export function estimateDiscount(coupon: Coupon | undefined, subtotalMinor: bigint): bigint | null {
  if (!coupon) return 0n;
  const minimum = coupon.minimumOrderAmount?.amountMinor ?? 0n;
  if (subtotalMinor < minimum) return null;
  if (coupon.kind === CouponKind.PERCENT) {
    let off = (subtotalMinor * BigInt(coupon.percentOff)) / 100n;
    const cap = coupon.maxDiscount?.amountMinor;
    if (cap !== undefined && cap > 0n && off > cap) off = cap;
    return off;
  }
  const fixed = coupon.fixedDiscount?.amountMinor ?? 0n;
  return fixed < subtotalMinor ? fixed : subtotalMinor;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

/** A timestamp as a local date and time; "—" when unset. */
export function formatTime(time: Timestamp | undefined): string {
  return time ? dateTime.format(timestampDate(time)) : "—";
}

/** A timestamp as a local date; "—" when unset. */
export function formatDate(time: Timestamp | undefined): string {
  return time ? dateOnly.format(timestampDate(time)) : "—";
}

/** The machine-readable form for <time dateTime>. */
export function isoTime(time: Timestamp | undefined): string | undefined {
  return time ? timestampDate(time).toISOString() : undefined;
}

/** "Colour: Red, Size: L" from a line's option values. */
export function optionText(values: Record<string, string>): string {
  return Object.entries(values)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, value]) => `${name}: ${value}`)
    .join(", ");
}

/** A short, readable form of an order id for lists (the full id is in the link and title). */
export function shortId(id: string): string {
  return id.slice(0, 8).toUpperCase();
}
