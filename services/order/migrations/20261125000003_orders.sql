-- Orders: a snapshot of what was bought at which prices, where it ships and where it is in its
-- life. Prices, names and the address are copied at creation and never change afterwards; the
-- status changes only through the state machine (services/order/src/order/state.rs), one
-- version step and one history row per change.

CREATE TABLE orders (
    order_id          uuid PRIMARY KEY,
    user_id           uuid NOT NULL,
    status            text NOT NULL CHECK (status IN (
                          'PENDING', 'AWAITING_PAYMENT', 'PAID', 'SHIPPED', 'FINISHED',
                          'CANCELLED', 'EXPIRED')),
    currency          text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    subtotal          bigint NOT NULL CHECK (subtotal >= 0),
    discount          bigint NOT NULL CHECK (discount >= 0 AND discount <= subtotal),
    shipping_fee      bigint NOT NULL CHECK (shipping_fee >= 0),
    total             bigint NOT NULL CHECK (total >= 0 AND total = subtotal - discount + shipping_fee),
    payment_method    smallint NOT NULL CHECK (payment_method BETWEEN 1 AND 3),
    -- The applied coupon (all four set, or none).
    user_coupon_id    uuid,
    coupon_id         uuid,
    coupon_name       text,
    coupon_kind       smallint,
    -- mercato.common.v1.PostalAddress, protobuf-encoded (a snapshot, never queried by field).
    shipping_address  bytea NOT NULL,
    payment_id        text,
    payment_url       text,
    attach_time       timestamptz,
    paid_time         timestamptz,
    shipment_id       text,
    carrier           text,
    tracking_number   text,
    tracking_url      text,
    ship_time         timestamptz,
    deliver_time      timestamptz,
    cancellation_reason smallint,
    version           bigint NOT NULL CHECK (version >= 1),
    create_time       timestamptz NOT NULL,
    update_time       timestamptz NOT NULL,
    payment_due_time  timestamptz NOT NULL,
    CHECK ((user_coupon_id IS NULL) = (coupon_id IS NULL)),
    CHECK (status <> 'CANCELLED' OR cancellation_reason IS NOT NULL)
);

-- A buyer's history, newest first (keyset paging on (create_time, order_id)).
CREATE INDEX orders_by_user ON orders (user_id, create_time DESC, order_id DESC);
-- The admin search, newest first.
CREATE INDEX orders_by_time ON orders (create_time DESC, order_id DESC);
-- The expiry sweeper scans only unpaid orders.
CREATE INDEX orders_unpaid_by_due ON orders (payment_due_time)
    WHERE status IN ('PENDING', 'AWAITING_PAYMENT');

CREATE TABLE order_lines (
    order_id        uuid NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    position        integer NOT NULL CHECK (position >= 0),
    sku_id          uuid NOT NULL,
    product_id      uuid NOT NULL,
    seller_id       uuid NOT NULL,
    product_name    text NOT NULL,
    sku_code        text NOT NULL,
    option_values   jsonb NOT NULL,
    main_image_url  text NOT NULL,
    quantity        bigint NOT NULL CHECK (quantity BETWEEN 1 AND 999),
    unit_price      bigint NOT NULL CHECK (unit_price >= 0),
    line_total      bigint NOT NULL CHECK (line_total = unit_price * quantity),
    PRIMARY KEY (order_id, position),
    UNIQUE (order_id, sku_id)
);

CREATE TABLE order_history (
    order_id     uuid NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    version      bigint NOT NULL,
    from_status  text,
    to_status    text NOT NULL,
    change_time  timestamptz NOT NULL,
    PRIMARY KEY (order_id, version)
);

-- CreateOrder's idempotency keys, scoped per user and bound to a hash of the request. A row is
-- RUNNING while its first request works (lease_until bounds how long another may wait before
-- taking over), then DONE (order_id names the order) or FAILED (the error to replay).
CREATE TABLE order_requests (
    user_id         uuid NOT NULL,
    idempotency_key text NOT NULL,
    fingerprint     bytea NOT NULL,
    order_id        uuid NOT NULL,
    state           text NOT NULL CHECK (state IN ('RUNNING', 'DONE', 'FAILED')),
    error_code      integer,
    error_message   text,
    error_details   bytea,
    lease_until     timestamptz NOT NULL,
    create_time     timestamptz NOT NULL,
    PRIMARY KEY (user_id, idempotency_key),
    CHECK ((state = 'FAILED') = (error_code IS NOT NULL))
);

CREATE INDEX order_requests_by_time ON order_requests (create_time);
