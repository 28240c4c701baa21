// Order history: the caller's orders, newest first, with "Load more" cursor paging.

import { useEffect, useState } from "react";
import { Link } from "react-router";
import { orderClient } from "../api/client";
import { toUiError, type UiError } from "../api/errors";
import { ErrorBanner } from "../components/ErrorBanner";
import { OrderStatusBadge } from "../components/OrderStatusBadge";
import { Empty, Loading } from "../components/Status";
import type { Order } from "../gen/mercato/bff/v1/order_types_pb";
import { formatTime, isoTime, shortId } from "../lib/labels";
import { formatMoney } from "../lib/money";
import { useTitle } from "../lib/useTitle";

const PAGE_SIZE = 10;

export function OrdersPage() {
  useTitle("Your orders");
  const [orders, setOrders] = useState<Order[]>([]);
  const [nextToken, setNextToken] = useState("");
  const [loading, setLoading] = useState(true);
  const [loadingMore, setLoadingMore] = useState(false);
  const [error, setError] = useState<UiError | null>(null);
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    const controller = new AbortController();
    setLoading(true);
    setError(null);
    orderClient.listOrders({ pageSize: PAGE_SIZE, pageToken: "" }, { signal: controller.signal }).then(
      (response) => {
        if (controller.signal.aborted) return;
        setOrders(response.orders);
        setNextToken(response.nextPageToken);
        setLoading(false);
      },
      (thrown: unknown) => {
        if (controller.signal.aborted) return;
        setError(toUiError(thrown));
        setLoading(false);
      },
    );
    return () => controller.abort();
  }, [generation]);

  const loadMore = async () => {
    setLoadingMore(true);
    setError(null);
    try {
      const response = await orderClient.listOrders({ pageSize: PAGE_SIZE, pageToken: nextToken });
      // A page boundary can shift while orders are placed: never show one twice.
      setOrders((shown) => {
        const seen = new Set(shown.map((o) => o.orderId));
        return [...shown, ...response.orders.filter((o) => !seen.has(o.orderId))];
      });
      setNextToken(response.nextPageToken);
    } catch (thrown) {
      setError(toUiError(thrown));
    } finally {
      setLoadingMore(false);
    }
  };

  return (
    <div className="page">
      <h1>Your orders</h1>
      {loading ? (
        <Loading label="Loading your orders…" />
      ) : error && orders.length === 0 ? (
        <>
          <ErrorBanner error={error} title="Your orders could not be loaded" />
          <button type="button" onClick={() => setGeneration((g) => g + 1)}>
            Try again
          </button>
        </>
      ) : orders.length === 0 ? (
        <Empty>
          You have not ordered anything yet. <Link to="/products">Browse the shop</Link>
        </Empty>
      ) : (
        <>
          <table className="table orders-table" data-testid="orders">
            <caption className="visually-hidden">Your orders, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Order</th>
                <th scope="col">Placed</th>
                <th scope="col">Items</th>
                <th scope="col">Total</th>
                <th scope="col">Status</th>
              </tr>
            </thead>
            <tbody>
              {orders.map((order) => (
                <tr key={order.orderId} data-testid="order-row" data-order-id={order.orderId}>
                  <td>
                    <Link to={`/orders/${order.orderId}`} aria-label={`Order ${shortId(order.orderId)}`}>
                      {shortId(order.orderId)}
                    </Link>
                  </td>
                  <td>
                    <time dateTime={isoTime(order.createTime)}>{formatTime(order.createTime)}</time>
                  </td>
                  <td>{order.lines.reduce((n, l) => n + l.quantity, 0n).toString()}</td>
                  <td>{formatMoney(order.total)}</td>
                  <td>
                    <OrderStatusBadge status={order.status} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <ErrorBanner error={error} title="More orders could not be loaded" />
          {nextToken && (
            <div className="load-more">
              <button type="button" className="secondary" onClick={loadMore} disabled={loadingMore}
                data-testid="orders-more">
                {loadingMore ? "Loading…" : "Load more"}
              </button>
            </div>
          )}
        </>
      )}
    </div>
  );
}
