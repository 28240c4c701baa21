// The cart: every line with its live price and status (AVAILABLE / OVER_STOCK / OUT_OF_STOCK /
// INVALID), quantity change, removal, emptying, the subtotal, and the way to checkout once every
// line can be bought.

import { type FormEvent, useState } from "react";
import { Link, useNavigate } from "react-router";
import { cartClient } from "../api/client";
import { toUiError, type UiError } from "../api/errors";
import { setCart } from "../cart/store";
import { ErrorBanner } from "../components/ErrorBanner";
import { Empty, Loading } from "../components/Status";
import type { Cart, CartLine } from "../gen/mercato/bff/v1/order_types_pb";
import { CartLineStatus } from "../gen/mercato/common/v1/enums_pb";
import { CART_LINE_LABEL, optionText } from "../lib/labels";
import { formatMoney } from "../lib/money";
import { useCall } from "../lib/useCall";
import { useTitle } from "../lib/useTitle";

export function CartPage() {
  useTitle("Your cart");
  const navigate = useNavigate();
  const state = useCall(async (signal) => {
    const response = await cartClient.getCart({}, { signal });
    setCart(response.cart);
    return response.cart;
  }, []);
  const [error, setError] = useState<UiError | null>(null);
  const [busy, setBusy] = useState<string | null>(null);

  /** Runs a cart mutation; its answer (the whole cart) replaces the page's and the header's. */
  const mutate = async (what: string, call: () => Promise<{ cart?: Cart }>) => {
    setBusy(what);
    setError(null);
    try {
      const response = await call();
      if (response.cart) {
        state.setData(response.cart);
        setCart(response.cart);
      }
    } catch (thrown) {
      setError(toUiError(thrown));
    } finally {
      setBusy(null);
    }
  };

  const cart = state.data;
  return (
    <div className="page">
      <h1>Your cart</h1>
      {state.loading && !cart ? (
        <Loading label="Loading your cart…" />
      ) : state.error ? (
        <>
          <ErrorBanner error={state.error} title="Your cart could not be loaded" />
          <button type="button" onClick={state.reload}>
            Try again
          </button>
        </>
      ) : !cart || cart.lines.length === 0 ? (
        <Empty>
          Your cart is empty. <Link to="/products">Browse the shop</Link>
        </Empty>
      ) : (
        <>
          <ErrorBanner error={error} title="The cart could not be changed" />
          <ul className="cart-lines" data-testid="cart-lines">
            {cart.lines.map((line) => (
              <CartLineRow
                key={line.skuId}
                line={line}
                busy={busy !== null}
                onQuantity={(quantity) =>
                  mutate(`qty-${line.skuId}`, () =>
                    cartClient.setCartItemQuantity({ skuId: line.skuId, quantity }),
                  )
                }
                onRemove={() =>
                  mutate(`rm-${line.skuId}`, () =>
                    cartClient.removeCartItem({ skuId: line.skuId, quantity: 0n }),
                  )
                }
              />
            ))}
          </ul>
          <div className="cart-summary panel">
            <p className="cart-subtotal">
              <span>
                Subtotal ({cart.itemCount.toString()} {cart.itemCount === 1n ? "item" : "items"})
              </span>
              <strong data-testid="cart-subtotal">{formatMoney(cart.subtotal)}</strong>
            </p>
            {!cart.checkoutable && (
              <p className="muted" id="checkout-blocked" data-testid="checkout-blocked">
                Every line must be available before you can check out: lower a quantity or remove
                what is out of stock or no longer sold.
              </p>
            )}
            <div className="actions">
              <button
                type="button"
                onClick={() => navigate("/checkout")}
                disabled={!cart.checkoutable || busy !== null}
                aria-describedby={cart.checkoutable ? undefined : "checkout-blocked"}
                data-testid="go-checkout"
              >
                Proceed to checkout
              </button>
              <button
                type="button"
                className="secondary"
                disabled={busy !== null}
                onClick={() => mutate("clear", () => cartClient.clearCart({}))}
                data-testid="clear-cart"
              >
                {busy === "clear" ? "Emptying…" : "Empty the cart"}
              </button>
            </div>
          </div>
        </>
      )}
    </div>
  );
}

function statusDetail(line: CartLine): string {
  switch (line.status) {
    case CartLineStatus.OVER_STOCK:
      return `Only ${line.availableQuantity.toString()} available: lower the quantity.`;
    case CartLineStatus.OUT_OF_STOCK:
      return "Sold out for now: remove it to check out.";
    case CartLineStatus.INVALID:
      return "This item is no longer sold: remove it to check out.";
    case CartLineStatus.AVAILABLE:
      return line.availableQuantity <= 5n ? `Only ${line.availableQuantity.toString()} left.` : "In stock.";
    case CartLineStatus.UNSPECIFIED:
      return "";
  }
}

interface RowProps {
  line: CartLine;
  busy: boolean;
  onQuantity: (quantity: bigint) => void;
  onRemove: () => void;
}

function CartLineRow({ line, busy, onQuantity, onRemove }: RowProps) {
  const [quantity, setQuantity] = useState(line.quantity.toString());
  const [local, setLocal] = useState<string | null>(null);
  const name = line.productName || "Unavailable item";
  const options = optionText(line.optionValues);
  const status = CartLineStatus[line.status] ?? "UNSPECIFIED";
  const inputId = `qty-${line.skuId}`;

  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    const units = Number(quantity);
    if (!Number.isInteger(units) || units < 1 || units > 999) {
      setLocal("Enter a quantity from 1 to 999.");
      return;
    }
    setLocal(null);
    onQuantity(BigInt(units));
  };

  return (
    <li className={`cart-line cart-line-${status.toLowerCase()}`} data-testid="cart-line" data-sku={line.skuCode}
      data-status={status}>
      <div className="cart-line-image">
        {line.mainImageUrl ? (
          <img src={line.mainImageUrl} alt="" />
        ) : (
          <span className="card-placeholder" aria-hidden="true">
            {name.slice(0, 1)}
          </span>
        )}
      </div>
      <div className="cart-line-info">
        <h2 className="cart-line-name">
          {line.productId ? <Link to={`/products/${line.productId}`}>{name}</Link> : name}
        </h2>
        {options && <p className="muted">{options}</p>}
        <p className="muted">SKU {line.skuCode}</p>
        <p className={`line-status line-status-${status.toLowerCase()}`} data-testid="line-status">
          <span className="badge">{CART_LINE_LABEL[line.status]}</span> {statusDetail(line)}
        </p>
      </div>
      <div className="cart-line-price">
        <p>
          {formatMoney(line.unitPrice)} <span className="muted">each</span>
        </p>
        <p className="cart-line-total" data-testid="line-total">
          {line.lineTotal ? formatMoney(line.lineTotal) : "—"}
        </p>
      </div>
      <form className="cart-line-actions" onSubmit={onSubmit} noValidate>
        <div className={`field quantity-field${local ? " field-invalid" : ""}`}>
          <label htmlFor={inputId}>
            Quantity<span className="visually-hidden"> of {name}{options ? ` (${options})` : ""}</span>
          </label>
          <input
            id={inputId}
            type="number"
            inputMode="numeric"
            min={1}
            max={999}
            value={quantity}
            onChange={(e) => setQuantity(e.target.value)}
            aria-invalid={local ? true : undefined}
            aria-describedby={local ? `${inputId}-error` : undefined}
          />
          {local && (
            <p className="field-error" id={`${inputId}-error`}>
              {local}
            </p>
          )}
        </div>
        <button type="submit" className="secondary" disabled={busy || quantity === line.quantity.toString()}
          data-testid="update-quantity">
          Update<span className="visually-hidden"> quantity of {name}</span>
        </button>
        <button type="button" className="secondary danger" disabled={busy} onClick={onRemove}
          data-testid="remove-line">
          Remove<span className="visually-hidden"> {name}{options ? ` (${options})` : ""}</span>
        </button>
      </form>
    </li>
  );
}
