// Unknown routes.

import { Link } from "react-router";
import { useTitle } from "../lib/useTitle";

export function NotFoundPage() {
  useTitle("Not found");
  return (
    <section className="page">
      <h1>Page not found</h1>
      <p>
        There is nothing here. <Link to="/products">Browse the shop</Link> instead.
      </p>
    </section>
  );
}
