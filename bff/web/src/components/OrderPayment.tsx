// The payment part of the order page: what the buyer does to pay, by method, and what the payment
// became. The order itself arrives through the page's watch; the payment's details (the sandbox
// page, the Stripe client secret, publishable key and Stripe.js URL, a failure's explanation)
// come from OrderService.GetOrderPayment, read again whenever the watched order moves.
//
// - SANDBOX: the payment service's test page, opened in a new tab. The storefront keeps its
//   session in memory only, so leaving this tab would sign the buyer out; instead this page stays
//   open, keeps watching, and shows the order paid by the time the buyer returns to it.
// - POINTS: paid from the wallet by the payment service as soon as the order exists; the page
//   shows the progress, and a failure (not enough points) with a way to add points.
// - STRIPE: the card form of Stripe.js (loaded from where the BFF says), confirmed with the
//   payment's client secret, when the BFF gives a publishable key; without one the card step says
//   plainly that it is unavailable. A declined card shows Stripe's message in the form; what the
//   payment then becomes arrives through the watch like any other move.

import { type FormEvent, useEffect, useRef, useState } from "react";
import { Link } from "react-router";
import { orderClient } from "../api/client";
import { toUiError, type UiError } from "../api/errors";
import type { Order } from "../gen/mercato/bff/v1/order_types_pb";
import type { Payment } from "../gen/mercato/bff/v1/payment_types_pb";
import { OrderStatus, PaymentMethod, PaymentStatus } from "../gen/mercato/common/v1/enums_pb";
import { formatTime, isoTime, isUnpaid, PAYMENT_METHOD_LABEL, PAYMENT_STATUS_LABEL } from "../lib/labels";
import { formatMoney } from "../lib/money";
import { type StripeCardElement, type StripeClient, stripeClient } from "../lib/stripe";
import { ErrorBanner } from "./ErrorBanner";

/** The order service's answer while no payment is attached: keep watching. */
const NOT_READY = "PAYMENT_NOT_READY";

interface Read {
  payment: Payment | undefined;
  error: UiError | null;
}

/** The order's payment, read again when the order's payment or status changes. */
function useOrderPayment(order: Order): Read & { loading: boolean } {
  const [read, setRead] = useState<Read>({ payment: undefined, error: null });
  const [loading, setLoading] = useState(false);
  const { orderId, paymentId, status } = order;
  useEffect(() => {
    if (!paymentId) return;
    const controller = new AbortController();
    setLoading(true);
    orderClient.getOrderPayment({ orderId }, { signal: controller.signal }).then(
      (response) => {
        if (controller.signal.aborted) return;
        setRead({ payment: response.payment, error: null });
        setLoading(false);
      },
      (thrown: unknown) => {
        if (controller.signal.aborted) return;
        const error = toUiError(thrown);
        // Not attached yet is a state, not a failure: the watch brings the next move.
        setRead((previous) => ({ payment: previous.payment, error: error.reason === NOT_READY ? null : error }));
        setLoading(false);
      },
    );
    return () => controller.abort();
  }, [orderId, paymentId, status]);
  return { ...read, loading };
}

export function OrderPayment({ order }: { order: Order }) {
  const { payment, error, loading } = useOrderPayment(order);
  const unpaid = isUnpaid(order.status);
  const status = payment ? PaymentStatus[payment.status] : "";

  return (
    <div className="payment" data-testid="payment" data-payment-status={status} data-method={PaymentMethod[order.paymentMethod]}>
      <h3>Payment</h3>
      {unpaid && <UnpaidStep order={order} payment={payment} loading={loading} />}
      {!unpaid && payment && <Receipt order={order} payment={payment} />}
      {!unpaid && !payment && order.status === OrderStatus.CANCELLED && (
        <p className="muted">Nothing was charged for this order.</p>
      )}
      <ErrorBanner error={error} title="The payment could not be read" />
    </div>
  );
}

/** What to do while the order waits for its payment. */
function UnpaidStep({ order, payment, loading }: { order: Order; payment: Payment | undefined; loading: boolean }) {
  const due = order.paymentDueTime ? (
    <p className="muted">
      Pay before <time dateTime={isoTime(order.paymentDueTime)}>{formatTime(order.paymentDueTime)}</time>, or the
      order expires.
    </p>
  ) : null;

  if (!order.paymentId) {
    return (
      <p className="muted" data-testid="payment-waiting" role="status">
        {order.paymentMethod === PaymentMethod.POINTS
          ? "Your points payment is being prepared…"
          : "Your payment is being prepared: how to pay appears here when it is ready."}
      </p>
    );
  }

  switch (order.paymentMethod) {
    case PaymentMethod.POINTS:
      return (
        <p data-testid="points-progress" role="status">
          {payment?.status === PaymentStatus.FAILED
            ? "Your points did not cover this order."
            : `Paying ${formatMoney(order.total)} from your wallet…`}
        </p>
      );
    case PaymentMethod.STRIPE:
      return (
        <>
          <CardStep order={order} payment={payment} loading={loading} />
          {due}
        </>
      );
    case PaymentMethod.SANDBOX:
    case PaymentMethod.UNSPECIFIED:
      return (
        <>
          <SandboxStep url={payment?.paymentUrl || order.paymentUrl} total={order} />
          {due}
        </>
      );
  }
}

/** The sandbox's payment page, in a new tab (this tab keeps the session and the watch). */
function SandboxStep({ url, total }: { url: string; total: Order }) {
  if (!url) {
    return (
      <p className="muted" data-testid="payment-waiting" role="status">
        The payment page is being prepared…
      </p>
    );
  }
  return (
    <div className="pay">
      <a className="button" href={url} target="_blank" rel="noopener" data-testid="pay-link"
        aria-describedby="pay-hint">
        Pay {formatMoney(total.total)}
        <span className="visually-hidden"> (opens the payment page in a new tab)</span>
      </a>
      <p className="muted" id="pay-hint">
        The test payment page opens in a new tab, where you choose Pay or Fail. Then come back to this tab: it
        updates by itself.
      </p>
    </div>
  );
}

/** Card payment through Stripe.js, or why there is none. */
function CardStep({ order, payment, loading }: { order: Order; payment: Payment | undefined; loading: boolean }) {
  if (!payment) {
    return (
      <p className="muted" role="status">
        {loading ? "Preparing the card payment…" : "The card payment is being prepared…"}
      </p>
    );
  }
  if (!payment.publishableKey || !payment.clientSecret) {
    return (
      <div className="alert alert-info" data-testid="card-unavailable" role="status">
        <p className="alert-title">Card payment is not available</p>
        <p>
          This shop has no Stripe account set up for card payments, so no card form can be shown here.
          {payment.paymentUrl
            ? " Its test payment page can settle this order instead:"
            : " Cancel this order and check out again with another payment method."}
        </p>
        {payment.paymentUrl && <SandboxStep url={payment.paymentUrl} total={order} />}
      </div>
    );
  }
  return <CardForm order={order} payment={payment} />;
}

type CardState =
  | { kind: "loading" }
  | { kind: "ready" }
  | { kind: "confirming" }
  | { kind: "confirmed" }
  | { kind: "declined" }
  | { kind: "unavailable" };

/** Stripe's card field and "Pay"; the order moves on (through the webhook) once Stripe confirms. */
function CardForm({ order, payment }: { order: Order; payment: Payment }) {
  const mount = useRef<HTMLDivElement>(null);
  const stripe = useRef<StripeClient | null>(null);
  const card = useRef<StripeCardElement | null>(null);
  const [state, setState] = useState<CardState>({ kind: "loading" });
  const [complete, setComplete] = useState(false);
  const [message, setMessage] = useState<string | null>(null);

  useEffect(() => {
    let cancelled = false;
    stripeClient(payment.publishableKey, payment.stripeJsUrl).then(
      (client) => {
        if (cancelled || !mount.current) return;
        stripe.current = client;
        const element = client.elements().create("card", { hidePostalCode: true });
        element.on("change", (event) => {
          // Stripe.js passes the field's state; a local fake may pass nothing (then let the
          // confirmation judge the card).
          setComplete(event?.complete ?? true);
          setMessage(event?.error?.message ?? null);
        });
        element.mount(mount.current);
        card.current = element;
        setState({ kind: "ready" });
      },
      () => {
        if (!cancelled) setState({ kind: "unavailable" });
      },
    );
    return () => {
      cancelled = true;
      card.current?.destroy();
      card.current = null;
    };
  }, [payment.publishableKey, payment.stripeJsUrl]);

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    if (!stripe.current || !card.current || state.kind !== "ready") return;
    setState({ kind: "confirming" });
    setMessage(null);
    const result = await stripe.current.confirmCardPayment(payment.clientSecret, {
      payment_method: { card: card.current },
    });
    if (result.error) {
      // Stripe's own words (a declined card, a wrong number). A decline (a card error) fails this
      // order's payment, since the payment service does not retry an intent with another card,
      // so the form is not offered again; anything else (Stripe unreachable, details it refused
      // before charging) may be tried again.
      setMessage(result.error.message ?? "The card payment did not go through.");
      setState({ kind: result.error.type === "card_error" ? "declined" : "ready" });
      return;
    }
    setState({ kind: "confirmed" });
  };

  if (state.kind === "unavailable") {
    return (
      <div className="alert alert-error" role="alert" data-testid="card-unavailable">
        <p className="alert-title">The card form could not be loaded</p>
        <p>Stripe could not be reached. Check your connection and reload this page.</p>
      </div>
    );
  }
  return (
    <form className="card-form" onSubmit={onSubmit} data-testid="card-form" aria-busy={state.kind === "loading"}>
      <label className="card-label" htmlFor="card-element" id="card-label">
        Card
      </label>
      {/* Stripe mounts its own (iframe) inputs here; they carry their own labels. */}
      <div id="card-element" ref={mount} className="card-element" aria-labelledby="card-label" />
      {state.kind === "loading" && <p className="muted">Loading the card form…</p>}
      {message && (
        <p className="field-error" role="alert" data-testid="card-error">
          {message}
        </p>
      )}
      {state.kind === "confirmed" ? (
        <p role="status" data-testid="card-confirmed">
          Card accepted: the order shows as paid as soon as Stripe confirms the payment.
        </p>
      ) : state.kind === "declined" ? (
        <p role="status" data-testid="card-declined">
          Nothing was charged, and this order is cancelled in a moment. Check out again to pay with another card.
        </p>
      ) : (
        <button type="submit" disabled={state.kind !== "ready" || !complete} data-testid="card-pay">
          {state.kind === "confirming" ? "Paying…" : `Pay ${formatMoney(order.total)}`}
        </button>
      )}
    </form>
  );
}

/** What the payment became, once the order no longer waits for it. */
function Receipt({ order, payment }: { order: Order; payment: Payment }) {
  const refunded = payment.refundedAmount && payment.refundedAmount.amountMinor > 0n;
  return (
    <dl className="attributes" data-testid="payment-receipt">
      <div>
        <dt>Method</dt>
        <dd>{PAYMENT_METHOD_LABEL[payment.method]}</dd>
      </div>
      <div>
        <dt>State</dt>
        <dd data-testid="payment-status">{PAYMENT_STATUS_LABEL[payment.status]}</dd>
      </div>
      <div>
        <dt>Amount</dt>
        <dd>{formatMoney(payment.amount ?? order.total)}</dd>
      </div>
      {payment.settleTime && (
        <div>
          <dt>{payment.status === PaymentStatus.FAILED ? "Failed" : "Settled"}</dt>
          <dd>
            <time dateTime={isoTime(payment.settleTime)}>{formatTime(payment.settleTime)}</time>
          </dd>
        </div>
      )}
      {refunded && (
        <div>
          <dt>Refunded</dt>
          <dd data-testid="payment-refunded">{formatMoney(payment.refundedAmount)}</dd>
        </div>
      )}
      {payment.status === PaymentStatus.FAILED && (
        <div>
          <dt>Why</dt>
          <dd data-testid="payment-failure">
            {payment.failureMessage || "The payment was declined."}
            {payment.method === PaymentMethod.POINTS && (
              <>
                {" "}
                <Link to="/wallet">Add points to your wallet</Link> and check out again.
              </>
            )}
          </dd>
        </div>
      )}
    </dl>
  );
}
