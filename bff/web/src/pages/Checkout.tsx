// Checkout of the cart: where to ship (the saved address, or another one), how to pay, an
// optional coupon, and "Place order". The idempotency key is made when the form opens and kept
// across retries of the same form, so a double click or a retry after a network failure makes one
// order; any change to the form, or a definitive refusal, makes the next press a new request with
// a new key.

import { type FormEvent, useEffect, useMemo, useRef, useState } from "react";
import { Link, useNavigate } from "react-router";
import { Code } from "@connectrpc/connect";
import { accountClient, cartClient, couponClient, idempotencyKey, orderClient, walletClient } from "../api/client";
import { isRetryable, toUiError, type UiError } from "../api/errors";
import { useSession } from "../auth/session";
import { loadCart, setCart } from "../cart/store";
import {
  ADDRESS_FIELDS,
  type AddressForm,
  AddressFields,
  addressSummary,
  EMPTY_ADDRESS,
  fromAddress,
} from "../components/AddressFields";
import { ErrorBanner } from "../components/ErrorBanner";
import { Empty, Loading } from "../components/Status";
import type { UserCoupon } from "../gen/mercato/bff/v1/coupon_types_pb";
import type { Cart } from "../gen/mercato/bff/v1/order_types_pb";
import type { PostalAddress } from "../gen/mercato/common/v1/address_pb";
import { PaymentMethod, UserCouponStatus } from "../gen/mercato/common/v1/enums_pb";
import { couponRule, estimateDiscount, formatDate, optionText, PAYMENT_METHOD_LABEL } from "../lib/labels";
import { formatMoney, moneyOf } from "../lib/money";
import { useCall } from "../lib/useCall";
import { useTitle } from "../lib/useTitle";

interface Loaded {
  cart: Cart | undefined;
  saved: PostalAddress | undefined;
  coupons: UserCoupon[];
}

export function CheckoutPage() {
  useTitle("Checkout");
  const state = useCall(async (signal): Promise<Loaded> => {
    const [cart, saved, coupons] = await Promise.all([
      cartClient.getCart({}, { signal }).then((r) => r.cart),
      accountClient.getShippingAddress({}, { signal }).then(
        (r) => r.shippingAddress,
        (thrown: unknown) => {
          // No saved address: the buyer types one here.
          if (toUiError(thrown).code === Code.NotFound) return undefined;
          throw thrown;
        },
      ),
      couponClient
        .listMyCoupons({ pageSize: 100, statuses: [UserCouponStatus.AVAILABLE] }, { signal })
        .then((r) => r.userCoupons),
    ]);
    setCart(cart);
    return { cart, saved, coupons };
  }, []);

  return (
    <div className="page">
      <h1>Checkout</h1>
      {state.loading ? (
        <Loading label="Preparing your checkout…" />
      ) : state.error || !state.data ? (
        <>
          <ErrorBanner error={state.error} title="The checkout could not be prepared" />
          <button type="button" onClick={state.reload}>
            Try again
          </button>
        </>
      ) : !state.data.cart || state.data.cart.lines.length === 0 ? (
        <Empty>
          Your cart is empty. <Link to="/products">Browse the shop</Link>
        </Empty>
      ) : !state.data.cart.checkoutable ? (
        <div className="alert alert-error" role="alert" data-testid="checkout-not-ready">
          <p>Some lines of your cart cannot be bought right now.</p>
          <p>
            <Link to="/cart">Review your cart</Link>
          </p>
        </div>
      ) : (
        <CheckoutForm cart={state.data.cart} saved={state.data.saved} coupons={state.data.coupons} />
      )}
    </div>
  );
}

const METHODS: ReadonlyArray<{ method: PaymentMethod; hint: string }> = [
  { method: PaymentMethod.SANDBOX, hint: "A test payment page where you choose success or failure." },
  { method: PaymentMethod.POINTS, hint: "Paid from your wallet balance (one point per yen)." },
  { method: PaymentMethod.STRIPE, hint: "Pay by card on the next page." },
];

interface FormProps {
  cart: Cart;
  saved: PostalAddress | undefined;
  coupons: UserCoupon[];
}

function CheckoutForm({ cart, saved, coupons }: FormProps) {
  const navigate = useNavigate();
  const session = useSession();
  const [useSaved, setUseSaved] = useState(saved !== undefined);
  const [address, setAddress] = useState<AddressForm>(saved ? fromAddress(saved) : EMPTY_ADDRESS);
  const [method, setMethod] = useState<PaymentMethod>(PaymentMethod.SANDBOX);
  const [couponId, setCouponId] = useState("");
  const [error, setError] = useState<UiError | null>(null);
  const [busy, setBusy] = useState(false);
  // One key per form content: kept across retries (and double clicks) of the same form.
  const key = useRef(idempotencyKey());
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    key.current = idempotencyKey();
  }, [useSaved, address, method, couponId]);

  const subtotal = cart.subtotal?.amountMinor ?? 0n;
  const currency = cart.subtotal?.currencyCode ?? "JPY";
  const coupon = coupons.find((c) => c.userCouponId === couponId);
  const discount = useMemo(() => estimateDiscount(coupon?.coupon, subtotal) ?? 0n, [coupon, subtotal]);
  const names = useMemo(() => {
    const map = new Map<string, string>();
    for (const line of cart.lines) {
      const options = optionText(line.optionValues);
      map.set(line.skuId, `${line.productName || line.skuCode}${options ? ` (${options})` : ""}`);
    }
    return map;
  }, [cart]);

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      const response = await orderClient.createOrder({
        idempotencyKey: key.current,
        source: { case: "cart", value: {} },
        // Unset ships to the saved address (the BFF reads it); otherwise the typed one.
        shippingAddress: useSaved ? undefined : address,
        paymentMethod: method,
        userCouponId: couponId,
      });
      const order = response.order;
      if (session) void loadCart(session.claims.sub);
      navigate(`/orders/${order?.orderId ?? ""}`, { state: { placed: true, replayed: response.replayed } });
    } catch (thrown) {
      const failure = toUiError(thrown);
      // A refusal created nothing: the next press is a new attempt (judged on the stock, cart and
      // coupon as they are then), not a replay of this refusal. After a network or server
      // failure the key stays, so the retry cannot make a second order.
      if (!isRetryable(failure)) key.current = idempotencyKey();
      setError(failure);
      setBusy(false);
    }
  };

  return (
    <form className="checkout" onSubmit={onSubmit} noValidate data-testid="checkout-form">
      <div className="checkout-layout">
        <div>
          <fieldset className="group" data-testid="shipping">
            <legend>Shipping address</legend>
            {saved && (
              <div className="choice-list">
                <label className="choice">
                  <input type="radio" name="address-choice" checked={useSaved} onChange={() => setUseSaved(true)} />
                  <span>
                    <strong>Your saved address</strong>
                    <span className="muted" data-testid="saved-address">
                      {addressSummary(saved)}
                    </span>
                  </span>
                </label>
                <label className="choice">
                  <input type="radio" name="address-choice" checked={!useSaved} onChange={() => setUseSaved(false)} />
                  <span>
                    <strong>Another address</strong>
                  </span>
                </label>
              </div>
            )}
            {!saved && (
              <p className="muted">
                You have no saved address: enter where to ship. You can save one on{" "}
                <Link to="/account">your account</Link>.
              </p>
            )}
            {!useSaved && <AddressFields form={address} onChange={setAddress} error={error} listId="checkout-prefectures" />}
          </fieldset>

          <fieldset className="group" data-testid="payment-method">
            <legend>Payment method</legend>
            <div className="choice-list">
              {METHODS.map(({ method: m, hint }) => (
                <label className="choice" key={m}>
                  <input
                    type="radio"
                    name="payment-method"
                    value={PaymentMethod[m]}
                    checked={method === m}
                    onChange={() => setMethod(m)}
                  />
                  <span>
                    <strong>{PAYMENT_METHOD_LABEL[m]}</strong>
                    <span className="muted">{hint}</span>
                  </span>
                </label>
              ))}
            </div>
            {method === PaymentMethod.POINTS && <WalletCover due={subtotal - discount} currency={currency} />}
          </fieldset>

          <fieldset className="group" data-testid="coupon">
            <legend>Coupon</legend>
            {coupons.length === 0 ? (
              <p className="muted">
                You have no coupon to use. <Link to="/coupons">See the campaigns</Link>
              </p>
            ) : (
              <div className="field">
                <label htmlFor="coupon-select">Use a coupon</label>
                <select id="coupon-select" value={couponId} onChange={(e) => setCouponId(e.target.value)}>
                  <option value="">No coupon</option>
                  {coupons.map((c) => {
                    const usable = estimateDiscount(c.coupon, subtotal) !== null;
                    return (
                      <option key={c.userCouponId} value={c.userCouponId} disabled={!usable}>
                        {c.coupon?.name ?? "Coupon"} — {couponRule(c.coupon)} (until {formatDate(c.expireTime)})
                        {usable ? "" : " — minimum not reached"}
                      </option>
                    );
                  })}
                </select>
              </div>
            )}
          </fieldset>
        </div>

        <aside className="panel checkout-summary" aria-labelledby="summary-heading">
          <h2 id="summary-heading">Your order</h2>
          <ul className="summary-lines">
            {cart.lines.map((line) => (
              <li key={line.skuId}>
                <span>
                  {names.get(line.skuId)} × {line.quantity.toString()}
                </span>
                <span>{formatMoney(line.lineTotal)}</span>
              </li>
            ))}
          </ul>
          <dl className="totals">
            <div>
              <dt>Subtotal</dt>
              <dd data-testid="checkout-subtotal">{formatMoney(cart.subtotal)}</dd>
            </div>
            {discount > 0n && (
              <div>
                <dt>Coupon</dt>
                <dd data-testid="checkout-discount">−{formatMoney(moneyOf(discount, currency))}</dd>
              </div>
            )}
          </dl>
          <p className="muted">Shipping and the final total are confirmed on the order page.</p>
          <ErrorBanner
            error={error}
            title="The order could not be placed"
            shownFields={useSaved ? [] : ADDRESS_FIELDS}
            skuName={(id) => names.get(id)}
          />
          <button type="submit" className="wide" disabled={busy} data-testid="place-order">
            {busy ? "Placing your order…" : "Place order"}
          </button>
        </aside>
      </div>
    </form>
  );
}

/**
 * The wallet's balance beside the POINTS choice, and a warning when it does not cover the
 * items (the payment service debits the whole total at once, or fails the payment).
 */
function WalletCover({ due, currency }: { due: bigint; currency: string }) {
  const wallet = useCall((signal) => walletClient.getWallet({}, { signal }).then((r) => r.wallet), []);
  if (wallet.loading) return <Loading label="Reading your wallet…" />;
  if (wallet.error) return <ErrorBanner error={wallet.error} title="Your wallet could not be read" />;
  const balance = wallet.data?.balance?.amountMinor ?? 0n;
  const short = balance < due;
  return (
    <div className={`alert ${short ? "alert-warning" : "alert-info"}`} data-testid="wallet-cover" data-covers={String(!short)}>
      <p>
        Your wallet holds <strong data-testid="checkout-wallet-balance">{formatMoney(moneyOf(balance, currency))}</strong> in
        points.
      </p>
      {short && (
        <p>
          That is less than this order&apos;s items ({formatMoney(moneyOf(due, currency))}): the payment would fail.{" "}
          <Link to="/wallet">Add points</Link> first.
        </p>
      )}
    </div>
  );
}
