// The seller console's product list: the caller's products in every state, newest first.

import { useEffect, useState } from "react";
import { Link } from "react-router";
import { sellerClient } from "../../api/client";
import { toUiError, type UiError } from "../../api/errors";
import { ErrorBanner } from "../../components/ErrorBanner";
import { Empty, Loading } from "../../components/Status";
import type { Product } from "../../gen/mercato/bff/v1/catalog_types_pb";
import { ProductStatus } from "../../gen/mercato/common/v1/enums_pb";
import { formatPriceRange } from "../../lib/money";
import { useTitle } from "../../lib/useTitle";
import { statusLabel } from "./status";

const FILTERS: ReadonlyArray<{ label: string; statuses: ProductStatus[] }> = [
  { label: "All", statuses: [] },
  { label: "Drafts", statuses: [ProductStatus.DRAFT] },
  { label: "Published", statuses: [ProductStatus.PUBLISHED] },
  { label: "Hidden", statuses: [ProductStatus.HIDDEN] },
];

export function SellerProductsPage() {
  useTitle("Seller console");
  const [filter, setFilter] = useState(0);
  const [products, setProducts] = useState<Product[]>([]);
  const [next, setNext] = useState("");
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<UiError | null>(null);

  const load = async (pageToken: string, signal?: AbortSignal) => {
    const statuses = FILTERS[filter]?.statuses ?? [];
    const response = await sellerClient.listSellerProducts({ pageSize: 20, pageToken, statuses }, { signal });
    return response;
  };

  useEffect(() => {
    const controller = new AbortController();
    setLoading(true);
    setError(null);
    load("", controller.signal).then(
      (r) => {
        if (controller.signal.aborted) return;
        setProducts(r.products);
        setNext(r.nextPageToken);
        setLoading(false);
      },
      (e: unknown) => {
        if (controller.signal.aborted) return;
        setError(toUiError(e));
        setLoading(false);
      },
    );
    return () => controller.abort();
    // Reloads when the status filter changes.
  }, [filter]);

  const loadMore = async () => {
    try {
      const r = await load(next);
      setProducts((p) => [...p, ...r.products]);
      setNext(r.nextPageToken);
    } catch (e) {
      setError(toUiError(e));
    }
  };

  return (
    <div className="page">
      <div className="page-heading">
        <h1>Your products</h1>
        <Link to="/seller/products/new" className="button" data-testid="new-product">
          New product
        </Link>
      </div>
      <div className="tabs" role="group" aria-label="Filter by status">
        {FILTERS.map((f, i) => (
          <button key={f.label} type="button" className={i === filter ? "tab active" : "tab"}
            aria-pressed={i === filter} onClick={() => setFilter(i)}>
            {f.label}
          </button>
        ))}
      </div>
      <ErrorBanner error={error} title="Your products could not be loaded" />
      {loading ? (
        <Loading label="Loading your products…" />
      ) : products.length === 0 ? (
        error ? null : <Empty>No products here yet. Create your first one.</Empty>
      ) : (
        <>
          <table className="table" data-testid="seller-products">
            <caption className="visually-hidden">Your products</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Status</th>
                <th scope="col">Price</th>
                <th scope="col">SKUs</th>
              </tr>
            </thead>
            <tbody>
              {products.map((p) => (
                <tr key={p.productId}>
                  <td>
                    <Link to={`/seller/products/${p.productId}`}>{p.name}</Link>
                  </td>
                  <td>
                    <span className={`badge badge-${statusLabel(p.status).toLowerCase()}`}>{statusLabel(p.status)}</span>
                  </td>
                  <td>{formatPriceRange(p.minPrice, p.maxPrice)}</td>
                  <td>{p.skus.length}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {next && (
            <div className="load-more">
              <button type="button" onClick={loadMore}>Load more</button>
            </div>
          )}
        </>
      )}
    </div>
  );
}
