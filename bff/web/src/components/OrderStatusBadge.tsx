// An order's state as a labelled badge (colour is never the only cue: the word is always there).

import { OrderStatus } from "../gen/mercato/common/v1/enums_pb";
import { ORDER_STATUS_LABEL } from "../lib/labels";

export function OrderStatusBadge({ status }: { status: OrderStatus }) {
  const name = OrderStatus[status] ?? "UNSPECIFIED";
  return (
    <span className={`badge badge-order badge-${name.toLowerCase()}`} data-testid="order-status" data-status={name}>
      {ORDER_STATUS_LABEL[status]}
    </span>
  );
}
