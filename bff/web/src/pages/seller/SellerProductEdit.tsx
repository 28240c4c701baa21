// Edit one of the seller's products: fields (guarded by the version last read), publish / hide,
// add SKUs, and each SKU's stock.

import { useEffect, useRef, useState } from "react";
import { Link, useLocation, useParams } from "react-router";
import { Code } from "@connectrpc/connect";
import { idempotencyKey, sellerClient } from "../../api/client";
import { toUiError, type UiError } from "../../api/errors";
import { ErrorBanner } from "../../components/ErrorBanner";
import { Field } from "../../components/Field";
import { Loading, Notice } from "../../components/Status";
import type { Product } from "../../gen/mercato/bff/v1/catalog_types_pb";
import { ProductStatus } from "../../gen/mercato/common/v1/enums_pb";
import { shopCurrency } from "../../lib/money";
import { useCall } from "../../lib/useCall";
import { useTitle } from "../../lib/useTitle";
import { draftOf, emptySku, productInput, skuInput, type ProductDraft } from "./draft";
import { ProductForm } from "./ProductForm";
import { StockPanel } from "./StockPanel";
import { statusLabel } from "./status";

const PRODUCT_PATHS = ["name", "description", "category", "tags", "attributes", "options", "images"];

export function SellerProductEditPage() {
  const { productId = "" } = useParams();
  const loaded = useCall((signal) => sellerClient.getSellerProduct({ productId }, { signal }), [productId]);
  const product = loaded.data?.product;
  useTitle(product ? `Edit ${product.name}` : "Edit product");

  if (loaded.loading) return <Loading label="Loading the product…" />;
  if (loaded.error || !product) {
    return (
      <section className="page">
        <h1>Product unavailable</h1>
        <ErrorBanner error={loaded.error} />
        <Link to="/seller">Back to your products</Link>
      </section>
    );
  }
  return <Editor product={product} onChange={(p) => loaded.setData({ ...loaded.data!, product: p })} />;
}

function Editor({ product, onChange }: { product: Product; onChange: (p: Product) => void }) {
  const location = useLocation();
  const created = (location.state as { created?: boolean } | null)?.created === true;
  const [draft, setDraft] = useState<ProductDraft>(() => draftOf(product));
  const [error, setError] = useState<UiError | null>(null);
  const [statusError, setStatusError] = useState<UiError | null>(null);
  const [notice, setNotice] = useState(created ? "Draft created." : "");
  const [busy, setBusy] = useState(false);

  useEffect(() => setDraft(draftOf(product)), [product]);

  const save = async () => {
    const built = productInput(draft, false);
    if ("error" in built) {
      setError(built.error);
      return;
    }
    setBusy(true);
    setError(null);
    setNotice("");
    try {
      const response = await sellerClient.updateProduct({
        productId: product.productId,
        product: built.input,
        updateMask: { paths: PRODUCT_PATHS },
        expectedVersion: product.version,
      });
      if (response.product) onChange(response.product);
      setNotice("Changes saved.");
    } catch (e) {
      const ui = toUiError(e);
      if (ui.code === Code.Aborted) {
        ui.message = `${ui.message}. Someone changed this product since you opened it; reload the page to see the current version.`;
      }
      setError(ui);
    } finally {
      setBusy(false);
    }
  };

  const transition = async (publish: boolean) => {
    setBusy(true);
    setStatusError(null);
    setNotice("");
    try {
      const response = publish
        ? await sellerClient.publishProduct({ productId: product.productId })
        : await sellerClient.hideProduct({ productId: product.productId });
      if (response.product) onChange(response.product);
      setNotice(publish ? "Published: the product is in the shop." : "Hidden from the shop.");
    } catch (e) {
      setStatusError(toUiError(e));
    } finally {
      setBusy(false);
    }
  };

  const published = product.status === ProductStatus.PUBLISHED;
  return (
    <div className="page">
      <p className="breadcrumbs">
        <Link to="/seller">Your products</Link>
      </p>
      <div className="page-heading">
        <h1>{product.name}</h1>
        <span className={`badge badge-${statusLabel(product.status).toLowerCase()}`} data-testid="product-status">
          {statusLabel(product.status)}
        </span>
      </div>
      {notice && <Notice>{notice}</Notice>}
      <ErrorBanner error={statusError} title="Could not change the status" />
      <div className="actions">
        {published ? (
          <>
            <button type="button" className="secondary" onClick={() => transition(false)} disabled={busy}>Hide from shop</button>
            <Link to={`/products/${product.productId}`}>View in shop</Link>
          </>
        ) : (
          <button type="button" onClick={() => transition(true)} disabled={busy} data-testid="publish">Publish</button>
        )}
      </div>

      <div className="two-columns">
        <section aria-labelledby="details-heading">
          <h2 id="details-heading">Details</h2>
          <ProductForm draft={draft} onChange={setDraft} onSubmit={save} error={error} busy={busy}
            submitLabel="Save changes" withSkus={false} />
        </section>
        <section aria-labelledby="skus-heading">
          <h2 id="skus-heading">Variants and stock</h2>
          {product.skus.map((sku) => (
            <StockPanel key={sku.skuId} sku={sku} />
          ))}
          <AddSku product={product} onAdded={onChange} />
        </section>
      </div>
    </div>
  );
}

function AddSku({ product, onAdded }: { product: Product; onAdded: (p: Product) => void }) {
  const [sku, setSkuState] = useState(emptySku);
  const key = useRef(idempotencyKey());
  // A changed SKU is a new request, so it gets a new key; a retry of the same one replays.
  const setSku = (next: typeof sku) => {
    key.current = idempotencyKey();
    setSkuState(next);
  };
  const [error, setError] = useState<UiError | null>(null);
  const [busy, setBusy] = useState(false);
  const at = (path: string) => error?.fields.find((v) => v.field === `sku.${path}` || v.field === path)?.description;

  const onSubmit = async (event: React.FormEvent) => {
    event.preventDefault();
    const built = skuInput(sku, product.options.map((o) => o.name), "sku");
    if ("error" in built) {
      setError(built.error);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const response = await sellerClient.createSku({ productId: product.productId, sku: built.input, idempotencyKey: key.current });
      key.current = idempotencyKey();
      if (response.sku) onAdded({ ...product, skus: [...product.skus, response.sku] });
      setSku(emptySku());
    } catch (e) {
      setError(toUiError(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <details className="panel">
      <summary>Add a SKU</summary>
      <ErrorBanner error={error} title="Could not add the SKU" shownFields={["sku.sku_code", "sku.price", "sku.option_values"]} />
      <form onSubmit={onSubmit} noValidate>
        <Field label="SKU code" name="sku.sku_code" required value={sku.skuCode}
          onChange={(e) => setSku({ ...sku, skuCode: e.target.value })} error={at("sku_code")} />
        {product.options.map((option) => {
          const id = `new-sku-${option.name}`;
          return (
            <div className="field" key={option.name}>
              <label htmlFor={id}>{option.name}</label>
              <select id={id} value={sku.optionValues[option.name] ?? ""}
                onChange={(e) => setSku({ ...sku, optionValues: { ...sku.optionValues, [option.name]: e.target.value } })}>
                <option value="">Choose…</option>
                {option.values.map((v) => <option key={v} value={v}>{v}</option>)}
              </select>
            </div>
          );
        })}
        {at("option_values") && <p className="field-error">{at("option_values")}</p>}
        <Field label={`Price (${shopCurrency})`} name="sku.price" required inputMode="decimal" value={sku.price}
          onChange={(e) => setSku({ ...sku, price: e.target.value })} error={at("price")} />
        <button type="submit" disabled={busy}>{busy ? "Adding…" : "Add SKU"}</button>
      </form>
    </details>
  );
}
