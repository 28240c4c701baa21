// The home page: featured products and the best sellers of the last 3 days.

import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Link } from "react-router";
import { catalogClient } from "../api/client";
import { ErrorBanner } from "../components/ErrorBanner";
import { ProductCard } from "../components/ProductCard";
import { Empty, Loading } from "../components/Status";
import { formatMoney } from "../lib/money";
import { useCall } from "../lib/useCall";
import { useTitle } from "../lib/useTitle";

export function HomePage() {
  useTitle("");
  const featured = useCall(
    (signal) => catalogClient.listProducts({ featuredOnly: true, pageSize: 8 }, { signal }),
    [],
  );
  const best = useCall((signal) => catalogClient.listBestSellers({ pageSize: 5 }, { signal }), []);
  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

  return (
    <div className="page">
      <section className="hero">
        <h1>Handmade goods from independent makers</h1>
        <p>Ceramics, textiles, woodwork and more, made in small batches.</p>
        <Link to="/products" className="button">
          Browse the shop
        </Link>
      </section>

      <section aria-labelledby="featured-heading">
        <h2 id="featured-heading">Featured</h2>
        {featured.loading ? (
          <Loading label="Loading featured products…" />
        ) : featured.error ? (
          <ErrorBanner error={featured.error} title="Featured products could not be loaded" />
        ) : featured.data && featured.data.products.length > 0 ? (
          <ul className="grid" data-testid="featured">
            {featured.data.products.map((p) => (
              <ProductCard key={p.productId} product={p} />
            ))}
          </ul>
        ) : (
          <Empty>Nothing is featured right now.</Empty>
        )}
      </section>

      <section aria-labelledby="best-heading">
        <h2 id="best-heading">Best sellers</h2>
        {best.loading ? (
          <Loading label="Loading best sellers…" />
        ) : best.error ? (
          <ErrorBanner error={best.error} title="Best sellers could not be loaded" />
        ) : best.data && best.data.bestSellers.length > 0 ? (
          <>
            {best.data.windowStartTime && best.data.windowEndTime && (
              <p className="muted">
                Paid orders from {dateFormat.format(timestampDate(best.data.windowStartTime))} to{" "}
                {dateFormat.format(timestampDate(best.data.windowEndTime))}
              </p>
            )}
            <ol className="ranking" data-testid="best-sellers">
              {best.data.bestSellers.map((b) => (
                <li key={b.productId}>
                  <Link to={`/products/${b.productId}`} className="ranking-link">
                    <span className="ranking-rank" aria-hidden="true">
                      {b.rank}
                    </span>
                    {b.mainImageUrl ? (
                      <img src={b.mainImageUrl} alt="" className="ranking-image" loading="lazy" />
                    ) : (
                      <span className="ranking-image" aria-hidden="true" />
                    )}
                    <span className="ranking-name">{b.productName}</span>
                    <span className="ranking-price">from {formatMoney(b.minPrice)}</span>
                    <span className="muted">{b.unitsSold.toString()} sold</span>
                  </Link>
                </li>
              ))}
            </ol>
          </>
        ) : (
          <Empty>No best sellers in the last 3 days yet.</Empty>
        )}
      </section>
    </div>
  );
}
