// One product: images, variant selection by option values, the chosen SKU's price and
// availability, and "Add to cart" for the chosen SKU.

import { type FormEvent, useEffect, useMemo, useState } from "react";
import { Link, useLocation, useParams } from "react-router";
import { Code } from "@connectrpc/connect";
import { cartClient, catalogClient, idempotencyKey } from "../api/client";
import { fieldError, toUiError, type UiError } from "../api/errors";
import { useSession } from "../auth/session";
import { setCart } from "../cart/store";
import { ErrorBanner } from "../components/ErrorBanner";
import { Loading, Notice } from "../components/Status";
import type { Product, Sku } from "../gen/mercato/bff/v1/catalog_types_pb";
import { formatMoney, formatPriceRange } from "../lib/money";
import { useCall } from "../lib/useCall";
import { useTitle } from "../lib/useTitle";

type Selection = Record<string, string>;

function matches(sku: Sku, selection: Selection): boolean {
  return Object.entries(selection).every(([name, value]) => sku.optionValues[name] === value);
}

/** The first SKU with units available (else the first), as the initial selection. */
function initialSelection(product: Product): Selection {
  const sku = product.skus.find((s) => s.availableQuantity > 0n) ?? product.skus[0];
  const selection: Selection = {};
  for (const option of product.options) {
    const value = sku?.optionValues[option.name] ?? option.values[0];
    if (value !== undefined) selection[option.name] = value;
  }
  return selection;
}

export function ProductPage() {
  const { productId = "" } = useParams();
  const { data, error, loading } = useCall(
    (signal) => catalogClient.getProduct({ productId }, { signal }),
    [productId],
  );
  const product = data?.product;
  useTitle(product?.name ?? (error ? "Product unavailable" : "Product"));

  if (loading) return <Loading label="Loading the product…" />;
  if (error || !product) {
    return (
      <section className="page">
        <h1>{error?.code === Code.NotFound ? "Product not found" : "Product unavailable"}</h1>
        <ErrorBanner error={error} />
        <p>
          <Link to="/products">Back to the shop</Link>
        </p>
      </section>
    );
  }
  return <ProductView key={product.productId} product={product} />;
}

function ProductView({ product }: { product: Product }) {
  const [selection, setSelection] = useState<Selection>(() => initialSelection(product));
  const images = product.images;
  const [imageIndex, setImageIndex] = useState(() => Math.max(0, images.findIndex((i) => i.main)));
  useEffect(() => setImageIndex(Math.max(0, images.findIndex((i) => i.main))), [images]);

  const sku = useMemo(() => product.skus.find((s) => matches(s, selection)), [product, selection]);
  const image = images[imageIndex];
  const description = product.description.trim();
  const attributes = Object.entries(product.attributes).sort(([a], [b]) => a.localeCompare(b));

  const available = sku ? sku.availableQuantity : 0n;
  const availability = !sku
    ? "This combination is not available."
    : available <= 0n
      ? "Out of stock"
      : available <= 5n
        ? `Only ${available.toString()} left`
        : "In stock";

  return (
    <article className="page product" data-testid="product">
      <p className="breadcrumbs">
        <Link to="/products">Shop</Link>
        {product.category && (
          <>
            {" / "}
            <Link to={`/products?category=${encodeURIComponent(product.category)}`}>{product.category}</Link>
          </>
        )}
      </p>
      <div className="product-layout">
        <div className="gallery">
          <div className="gallery-main">
            {image ? (
              <img src={image.url} alt={image.altText || product.name} />
            ) : (
              <span className="card-placeholder" aria-hidden="true">
                {product.name.slice(0, 1)}
              </span>
            )}
          </div>
          {images.length > 1 && (
            <ul className="thumbs" aria-label="Images">
              {images.map((img, index) => (
                <li key={`${img.url}-${index}`}>
                  <button
                    type="button"
                    className="thumb"
                    aria-label={`Show image ${index + 1}${img.altText ? `: ${img.altText}` : ""}`}
                    aria-pressed={index === imageIndex}
                    onClick={() => setImageIndex(index)}
                  >
                    <img src={img.url} alt="" />
                  </button>
                </li>
              ))}
            </ul>
          )}
        </div>

        <div className="product-info">
          <h1 data-testid="product-name">{product.name}</h1>
          <p className="price" data-testid="product-price" aria-live="polite">
            {sku ? formatMoney(sku.price) : formatPriceRange(product.minPrice, product.maxPrice)}
          </p>

          {product.options.map((option) => (
            <fieldset key={option.name} className="option" data-testid={`option-${option.name}`}>
              <legend>{option.name}</legend>
              <div className="option-values">
                {option.values.map((value) => {
                  const exists = product.skus.some((s) =>
                    matches(s, { ...selection, [option.name]: value }),
                  );
                  const id = `opt-${option.name}-${value}`.replace(/\s+/g, "-");
                  return (
                    <span key={value} className="option-value">
                      <input
                        type="radio"
                        id={id}
                        name={`option-${option.name}`}
                        value={value}
                        checked={selection[option.name] === value}
                        onChange={() => setSelection((s) => ({ ...s, [option.name]: value }))}
                      />
                      <label htmlFor={id} className={exists ? undefined : "unavailable"}>
                        {value}
                        {exists ? null : <span className="visually-hidden"> (not available)</span>}
                      </label>
                    </span>
                  );
                })}
              </div>
            </fieldset>
          ))}

          <p
            className={`availability ${sku && available > 0n ? "in-stock" : "out-of-stock"}`}
            data-testid="availability"
            aria-live="polite"
          >
            {availability}
          </p>
          {sku && (
            <p className="muted" data-testid="sku-code">
              SKU {sku.skuCode}
            </p>
          )}

          <AddToCart key={sku?.skuId ?? "none"} sku={sku} />

          {description && <p className="description">{description}</p>}

          {attributes.length > 0 && (
            <dl className="attributes">
              {attributes.map(([name, value]) => (
                <div key={name}>
                  <dt>{name}</dt>
                  <dd>{value}</dd>
                </div>
              ))}
            </dl>
          )}
          {product.tags.length > 0 && (
            <ul className="tags" aria-label="Tags">
              {product.tags.map((tag) => (
                <li key={tag}>{tag}</li>
              ))}
            </ul>
          )}
        </div>
      </div>
    </article>
  );
}

/** Quantity and "Add to cart" for the chosen SKU (signed-out visitors are asked to sign in). */
function AddToCart({ sku }: { sku: Sku | undefined }) {
  const session = useSession();
  const location = useLocation();
  const [quantity, setQuantity] = useState("1");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<UiError | null>(null);
  const [added, setAdded] = useState<string | null>(null);

  if (!session) {
    return (
      <p className="add-to-cart">
        <Link to="/login" state={{ from: location.pathname }} data-testid="sign-in-to-buy">
          Sign in to add this to your cart
        </Link>
      </p>
    );
  }
  const purchasable = sku !== undefined && sku.active && sku.availableQuantity > 0n;

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    if (!sku) return;
    const units = Number(quantity);
    setError(null);
    setAdded(null);
    setBusy(true);
    try {
      // One key per click: a transport retry of this click adds once; the next click adds again.
      const response = await cartClient.addCartItem({
        skuId: sku.skuId,
        quantity: BigInt(Number.isInteger(units) ? units : 0),
        idempotencyKey: idempotencyKey(),
      });
      setCart(response.cart);
      const line = response.cart?.lines.find((l) => l.skuId === sku.skuId);
      setAdded(`Added to your cart${line ? ` (${line.quantity.toString()} in the cart)` : ""}.`);
    } catch (thrown) {
      setError(toUiError(thrown));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="add-to-cart" onSubmit={onSubmit} noValidate data-testid="add-to-cart">
      <div className="row">
        <div className={`field quantity-field${fieldError(error, "quantity") ? " field-invalid" : ""}`}>
          <label htmlFor="add-quantity">Quantity</label>
          <input
            id="add-quantity"
            name="quantity"
            type="number"
            inputMode="numeric"
            min={1}
            max={999}
            value={quantity}
            onChange={(e) => setQuantity(e.target.value)}
            aria-invalid={fieldError(error, "quantity") ? true : undefined}
            aria-describedby={fieldError(error, "quantity") ? "add-quantity-error" : undefined}
          />
          {fieldError(error, "quantity") && (
            <p className="field-error" id="add-quantity-error" data-testid="field-error-quantity">
              {fieldError(error, "quantity")}
            </p>
          )}
        </div>
        <button type="submit" disabled={busy || !purchasable} data-testid="add-to-cart-button">
          {busy ? "Adding…" : purchasable ? "Add to cart" : "Unavailable"}
        </button>
      </div>
      {added && (
        <Notice>
          {added} <Link to="/cart">View cart</Link>
        </Notice>
      )}
      <ErrorBanner error={error} title="Could not add to the cart" shownFields={["quantity"]} />
    </form>
  );
}
