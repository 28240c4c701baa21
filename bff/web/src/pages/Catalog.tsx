// The catalog: search and filters (kept in the URL, so a result list can be shared and the back
// button works), sorting and cursor paging with "Load more".

import { type FormEvent, useEffect, useState } from "react";
import { useSearchParams } from "react-router";
import { catalogClient } from "../api/client";
import { fieldError, toUiError, type UiError } from "../api/errors";
import { ErrorBanner } from "../components/ErrorBanner";
import { Field } from "../components/Field";
import { ProductCard } from "../components/ProductCard";
import { Empty, Loading } from "../components/Status";
import type { Product } from "../gen/mercato/bff/v1/catalog_types_pb";
import { ProductSort } from "../gen/mercato/bff/v1/catalog_types_pb";
import { parseMoneyInput, shopCurrency } from "../lib/money";
import { useTitle } from "../lib/useTitle";

const PAGE_SIZE = 12;

const SORTS: ReadonlyArray<{ value: string; label: string; sort: ProductSort }> = [
  { value: "newest", label: "Newest", sort: ProductSort.NEWEST },
  { value: "price-asc", label: "Price: low to high", sort: ProductSort.PRICE_ASCENDING },
  { value: "price-desc", label: "Price: high to low", sort: ProductSort.PRICE_DESCENDING },
  { value: "relevance", label: "Best match", sort: ProductSort.RELEVANCE },
];

interface Filters {
  q: string;
  category: string;
  min: string;
  max: string;
  sort: string;
}

function readFilters(params: URLSearchParams): Filters {
  return {
    q: params.get("q") ?? "",
    category: params.get("category") ?? "",
    min: params.get("min") ?? "",
    max: params.get("max") ?? "",
    sort: params.get("sort") ?? "",
  };
}

export function CatalogPage() {
  useTitle("Shop");
  const [params, setParams] = useSearchParams();
  const filters = readFilters(params);
  const [form, setForm] = useState<Filters>(filters);
  const [products, setProducts] = useState<Product[]>([]);
  const [nextToken, setNextToken] = useState("");
  const [loading, setLoading] = useState(true);
  const [loadingMore, setLoadingMore] = useState(false);
  const [error, setError] = useState<UiError | null>(null);
  const [inputError, setInputError] = useState<Record<string, string>>({});
  const key = params.toString();

  const request = (pageToken: string) => {
    const sort = SORTS.find((s) => s.value === filters.sort)?.sort ?? ProductSort.UNSPECIFIED;
    return {
      pageSize: PAGE_SIZE,
      pageToken,
      query: filters.q,
      category: filters.category,
      minPrice: parseMoneyInput(filters.min) ?? undefined,
      maxPrice: parseMoneyInput(filters.max) ?? undefined,
      orderBy: sort,
    };
  };

  useEffect(() => {
    setForm(readFilters(params));
    const controller = new AbortController();
    setLoading(true);
    setError(null);
    catalogClient.listProducts(request(""), { signal: controller.signal }).then(
      (response) => {
        if (controller.signal.aborted) return;
        setProducts(response.products);
        setNextToken(response.nextPageToken);
        setLoading(false);
      },
      (thrown: unknown) => {
        if (controller.signal.aborted) return;
        setProducts([]);
        setNextToken("");
        setError(toUiError(thrown));
        setLoading(false);
      },
    );
    return () => controller.abort();
    // Reloads when the URL's filters change; `request` reads them from this render.
  }, [key]);

  const loadMore = async () => {
    setLoadingMore(true);
    setError(null);
    try {
      const response = await catalogClient.listProducts(request(nextToken));
      setProducts((existing) => [...existing, ...response.products]);
      setNextToken(response.nextPageToken);
    } catch (thrown) {
      setError(toUiError(thrown));
    } finally {
      setLoadingMore(false);
    }
  };

  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    const problems: Record<string, string> = {};
    if (form.min && !parseMoneyInput(form.min)) problems["min_price"] = "Enter an amount, e.g. 1200";
    if (form.max && !parseMoneyInput(form.max)) problems["max_price"] = "Enter an amount, e.g. 5000";
    setInputError(problems);
    if (Object.keys(problems).length > 0) return;
    const next = new URLSearchParams();
    for (const [name, value] of Object.entries(form)) {
      const trimmed = value.trim();
      // Relevance needs a query; without one the default order applies.
      if (name === "sort" && trimmed === "relevance" && !form.q.trim()) continue;
      if (trimmed) next.set(name, trimmed);
    }
    setParams(next);
  };

  const set = (name: keyof Filters) => (e: { target: { value: string } }) =>
    setForm((f) => ({ ...f, [name]: e.target.value }));

  const serverField = (path: string) => fieldError(error, path);

  return (
    <div className="page catalog">
      <h1>Shop</h1>
      <form className="filters" role="search" aria-label="Search products" onSubmit={onSubmit}>
        <Field
          label="Search"
          name="query"
          type="search"
          value={form.q}
          onChange={set("q")}
          maxLength={200}
          placeholder="mug, linen, walnut…"
          error={serverField("query")}
        />
        <Field
          label="Category"
          name="category"
          value={form.category}
          onChange={set("category")}
          placeholder="e.g. ceramics"
          error={serverField("category")}
        />
        <Field
          label={`Min price (${shopCurrency})`}
          name="min_price"
          inputMode="decimal"
          value={form.min}
          onChange={set("min")}
          error={inputError["min_price"] ?? serverField("min_price")}
        />
        <Field
          label={`Max price (${shopCurrency})`}
          name="max_price"
          inputMode="decimal"
          value={form.max}
          onChange={set("max")}
          error={inputError["max_price"] ?? serverField("max_price")}
        />
        <div className="field">
          <label htmlFor="sort">Sort by</label>
          <select id="sort" name="sort" value={form.sort || "newest"} onChange={set("sort")}>
            {SORTS.map((s) => (
              <option key={s.value} value={s.value} disabled={s.value === "relevance" && !form.q.trim()}>
                {s.label}
              </option>
            ))}
          </select>
        </div>
        <div className="filters-actions">
          <button type="submit" data-testid="search-submit">
            Search
          </button>
        </div>
      </form>

      <ErrorBanner
        error={error}
        title="The products could not be loaded"
        shownFields={["query", "category", "min_price", "max_price"]}
      />

      <section aria-labelledby="results-heading" aria-busy={loading}>
        <h2 id="results-heading" className="visually-hidden">
          Results
        </h2>
        {loading ? (
          <Loading label="Loading products…" />
        ) : products.length > 0 ? (
          <>
            <ul className="grid" data-testid="results">
              {products.map((p) => (
                <ProductCard key={p.productId} product={p} />
              ))}
            </ul>
            {nextToken && (
              <div className="load-more">
                <button type="button" onClick={loadMore} disabled={loadingMore} data-testid="load-more">
                  {loadingMore ? "Loading…" : "Load more"}
                </button>
              </div>
            )}
          </>
        ) : error ? null : (
          <Empty>No products match. Try other words or fewer filters.</Empty>
        )}
      </section>
    </div>
  );
}
