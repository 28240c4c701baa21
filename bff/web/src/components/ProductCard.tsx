// One product in a grid: main image, name, price range.

import { Link } from "react-router";
import type { Product } from "../gen/mercato/bff/v1/catalog_types_pb";
import { formatPriceRange } from "../lib/money";

export function mainImage(product: Product) {
  return product.images.find((i) => i.main) ?? product.images[0];
}

export function ProductCard({ product }: { product: Product }) {
  const image = mainImage(product);
  return (
    <li className="card" data-testid="product-card">
      <Link to={`/products/${product.productId}`} className="card-link">
        <div className="card-image">
          {image ? (
            <img src={image.url} alt={image.altText || product.name} loading="lazy" />
          ) : (
            <span className="card-placeholder" aria-hidden="true">
              {product.name.slice(0, 1)}
            </span>
          )}
        </div>
        <span className="card-name">{product.name}</span>
        <span className="card-price">{formatPriceRange(product.minPrice, product.maxPrice)}</span>
      </Link>
    </li>
  );
}
