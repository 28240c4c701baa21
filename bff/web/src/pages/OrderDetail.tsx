// One order, live: its progress (placed → paid → shipped → delivered), the payment by method (the
// sandbox page, the wallet's progress, Stripe's card form; see components/OrderPayment), the
// parcel's tracking number, lines, totals with the coupon's discount, the shipping address, the
// status timeline, and "Cancel" while it is unpaid. The page follows the order through
// WatchOrder, so a payment, a shipment or a cancellation made anywhere shows here without a
// reload.

import { useState } from "react";
import { Link, useLocation, useParams } from "react-router";
import { Code } from "@connectrpc/connect";
import { orderClient } from "../api/client";
import { toUiError, type UiError } from "../api/errors";
import { addressSummary } from "../components/AddressFields";
import { ErrorBanner } from "../components/ErrorBanner";
import { OrderPayment } from "../components/OrderPayment";
import { OrderStatusBadge } from "../components/OrderStatusBadge";
import { Loading, Notice } from "../components/Status";
import type { Order } from "../gen/mercato/bff/v1/order_types_pb";
import { OrderStatus } from "../gen/mercato/common/v1/enums_pb";
import {
  CANCELLATION_LABEL,
  formatTime,
  isoTime,
  isUnpaid,
  optionText,
  ORDER_STATUS_LABEL,
  PAYMENT_METHOD_LABEL,
  shortId,
} from "../lib/labels";
import { formatMoney } from "../lib/money";
import { useTitle } from "../lib/useTitle";
import { type WatchStatus, useWatchOrder } from "../lib/useWatchOrder";

const WATCH_LABEL: Record<WatchStatus, string> = {
  connecting: "Connecting…",
  live: "Live: changes appear here as they happen",
  reconnecting: "Reconnecting…",
  ended: "Final state",
  failed: "Not updating",
};

export function OrderDetailPage() {
  const { orderId = "" } = useParams();
  const location = useLocation();
  const placed = (location.state as { placed?: boolean; replayed?: boolean } | null) ?? null;
  const watch = useWatchOrder(orderId);
  const order = watch.order;
  useTitle(order ? `Order ${shortId(order.orderId)}` : "Order");

  if (!order) {
    if (watch.status === "failed") {
      return (
        <section className="page">
          <h1>{watch.error?.code === Code.NotFound ? "Order not found" : "Order unavailable"}</h1>
          <ErrorBanner error={watch.error} />
          <p>
            <Link to="/orders">Your orders</Link>
          </p>
        </section>
      );
    }
    return <Loading label="Loading the order…" />;
  }

  return (
    <article className="page order" data-testid="order" data-order-id={order.orderId}>
      <p className="breadcrumbs">
        <Link to="/orders">Your orders</Link>
      </p>
      <div className="page-heading">
        <h1>
          Order <span data-testid="order-number">{shortId(order.orderId)}</span>
        </h1>
        <p
          className="watch-state"
          data-testid="watch-state"
          data-watch={watch.status}
          data-streamed={watch.streamed === undefined ? "" : OrderStatus[watch.streamed]}
          data-watches={watch.watches}
        >
          <span className={`live-dot live-dot-${watch.status}`} aria-hidden="true" />
          {WATCH_LABEL[watch.status]}
        </p>
      </div>
      {placed?.placed && (
        <Notice>{placed.replayed ? "This order was already placed." : "Thank you: your order is placed."}</Notice>
      )}
      {watch.status === "failed" && (
        <div className="actions">
          <ErrorBanner error={watch.error} title="Live updates stopped" />
          <button type="button" className="secondary" onClick={watch.retry}>
            Resume live updates
          </button>
        </div>
      )}

      <section className="panel order-status" aria-labelledby="status-heading">
        <h2 id="status-heading">Status</h2>
        {/* Announced when it changes: the status is what a buyer waits for on this page. */}
        <p className="order-current" aria-live="polite" aria-atomic="true">
          <OrderStatusBadge status={order.status} />
          {order.status === OrderStatus.CANCELLED && CANCELLATION_LABEL[order.cancellationReason] && (
            <span className="muted"> — {CANCELLATION_LABEL[order.cancellationReason]}</span>
          )}
        </p>
        <Progress order={order} />
        {order.shipment && (
          <p data-testid="shipment">
            Shipped with {order.shipment.carrier}, tracking number{" "}
            {order.shipment.trackingUrl ? (
              <a href={order.shipment.trackingUrl} rel="noreferrer">
                <code data-testid="tracking-number">{order.shipment.trackingNumber}</code>
              </a>
            ) : (
              <code data-testid="tracking-number">{order.shipment.trackingNumber}</code>
            )}
            {order.shipment.deliverTime ? `, delivered ${formatTime(order.shipment.deliverTime)}` : ""}.
          </p>
        )}
        <OrderPayment order={order} />
        <h3>History</h3>
        <Timeline order={order} />
        {isUnpaid(order.status) && <CancelOrder order={order} onCancelled={watch.apply} />}
      </section>

      <div className="two-columns">
        <section className="panel" aria-labelledby="lines-heading">
          <h2 id="lines-heading">Items</h2>
          <ul className="summary-lines" data-testid="order-lines">
            {order.lines.map((line) => (
              <li key={line.skuId} data-testid="order-line" data-sku={line.skuCode}>
                <span>
                  {line.productId ? <Link to={`/products/${line.productId}`}>{line.productName}</Link> : line.productName}
                  {Object.keys(line.optionValues).length > 0 && (
                    <span className="muted"> ({optionText(line.optionValues)})</span>
                  )}{" "}
                  × {line.quantity.toString()}
                  <span className="muted block">
                    {formatMoney(line.unitPrice)} each · SKU {line.skuCode}
                  </span>
                </span>
                <span>{formatMoney(line.lineTotal)}</span>
              </li>
            ))}
          </ul>
          <dl className="totals">
            <div>
              <dt>Subtotal</dt>
              <dd data-testid="order-subtotal">{formatMoney(order.subtotal)}</dd>
            </div>
            {order.discount && order.discount.amountMinor > 0n && (
              <div>
                <dt>Coupon{order.coupon?.name ? ` (${order.coupon.name})` : ""}</dt>
                <dd data-testid="order-discount">−{formatMoney(order.discount)}</dd>
              </div>
            )}
            <div>
              <dt>Shipping</dt>
              <dd>{formatMoney(order.shippingFee)}</dd>
            </div>
            <div className="total">
              <dt>Total</dt>
              <dd data-testid="order-total">{formatMoney(order.total)}</dd>
            </div>
          </dl>
        </section>
        <section className="panel" aria-labelledby="delivery-heading">
          <h2 id="delivery-heading">Delivery and payment</h2>
          <dl className="attributes">
            <div>
              <dt>Ship to</dt>
              <dd data-testid="order-address">{addressSummary(order.shippingAddress)}</dd>
            </div>
            <div>
              <dt>Payment</dt>
              <dd data-testid="order-payment-method">{PAYMENT_METHOD_LABEL[order.paymentMethod]}</dd>
            </div>
            <div>
              <dt>Placed</dt>
              <dd>
                <time dateTime={isoTime(order.createTime)}>{formatTime(order.createTime)}</time>
              </dd>
            </div>
            <div>
              <dt>Order id</dt>
              <dd>
                <code>{order.orderId}</code>
              </dd>
            </div>
          </dl>
        </section>
      </div>
    </article>
  );
}

/** The steps of a healthy order, in order. */
const STEPS: ReadonlyArray<{ status: OrderStatus; label: string }> = [
  { status: OrderStatus.PENDING, label: "Placed" },
  { status: OrderStatus.PAID, label: "Paid" },
  { status: OrderStatus.SHIPPED, label: "Shipped" },
  { status: OrderStatus.FINISHED, label: "Delivered" },
];

/** Where the order is on its way to the buyer; not shown for a cancelled or expired order. */
function Progress({ order }: { order: Order }) {
  if (order.status === OrderStatus.CANCELLED || order.status === OrderStatus.EXPIRED) return null;
  // AWAITING_PAYMENT is still the "Placed" step: the payment is what comes next.
  const current = order.status === OrderStatus.AWAITING_PAYMENT ? OrderStatus.PENDING : order.status;
  const reached = STEPS.findIndex((step) => step.status === current);
  return (
    <ol className="progress" aria-label="Progress" data-testid="progress">
      {STEPS.map((step, index) => (
        <li
          key={step.status}
          className={index < reached ? "done" : index === reached ? "current" : "todo"}
          aria-current={index === reached ? "step" : undefined}
          data-step={OrderStatus[step.status]}
        >
          <span className="progress-mark" aria-hidden="true">
            {index < reached || (index === reached && index === STEPS.length - 1) ? "✓" : index + 1}
          </span>
          <span>
            {step.label}
            <span className="visually-hidden">
              {index < reached ? " (done)" : index === reached ? " (current)" : " (to come)"}
            </span>
          </span>
        </li>
      ))}
    </ol>
  );
}

/** The status history, oldest first. */
function Timeline({ order }: { order: Order }) {
  return (
    <ol className="timeline" data-testid="timeline" aria-label="Status history">
      {order.history.map((change, index) => (
        <li key={`${index}-${change.toStatus}`} data-status={OrderStatus[change.toStatus]}>
          <span className="timeline-status">{ORDER_STATUS_LABEL[change.toStatus]}</span>{" "}
          <time className="muted" dateTime={isoTime(change.changeTime)}>
            {formatTime(change.changeTime)}
          </time>
        </li>
      ))}
    </ol>
  );
}

/** "Cancel order" with a confirmation step; the answer is shown at once (the watch follows). */
function CancelOrder({ order, onCancelled }: { order: Order; onCancelled: (order: Order | undefined) => void }) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<UiError | null>(null);

  const cancel = async () => {
    setBusy(true);
    setError(null);
    try {
      const response = await orderClient.cancelOrder({ orderId: order.orderId });
      onCancelled(response.order);
      setConfirming(false);
    } catch (thrown) {
      setError(toUiError(thrown));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="cancel" data-testid="cancel">
      <ErrorBanner error={error} title="The order could not be cancelled" />
      {confirming ? (
        <div role="group" aria-labelledby="cancel-question" className="actions">
          <p id="cancel-question">Cancel this order? Its items go back on sale.</p>
          {/* Focus moves to the question's answer: the button pressed to ask is gone. */}
          <button type="button" className="danger-solid" onClick={cancel} disabled={busy} data-testid="confirm-cancel"
            autoFocus>
            {busy ? "Cancelling…" : "Yes, cancel the order"}
          </button>
          <button type="button" className="secondary" onClick={() => setConfirming(false)} disabled={busy}>
            Keep the order
          </button>
        </div>
      ) : (
        <button type="button" className="secondary danger" onClick={() => setConfirming(true)} data-testid="cancel-order">
          Cancel order
        </button>
      )}
    </div>
  );
}
