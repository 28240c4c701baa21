-- Shipments: one per paid order (the UNIQUE order_id is what makes a redelivered or duplicated
-- order.paid a no-op), with the lines and the address copied from the event.
--
-- Progress is recorded so that a crash at any point resumes where it stopped: the consumer of
-- order.paid writes the row PREPARING with next_step_time = now; the shipment worker then commits
-- the stock reservation (stock_committed), hands the parcel to the carrier (SHIPPED, after the
-- order service accepted MarkOrderShipped) and records the delivery (DELIVERED, after
-- MarkOrderFinished). Every remote call is idempotent, and the local step is written only after
-- it succeeded, so repeating a step after a crash repeats nothing.
CREATE TABLE shipments (
    shipment_id      uuid        PRIMARY KEY,
    order_id         uuid        NOT NULL CONSTRAINT shipments_order_id_key UNIQUE,
    user_id          uuid        NOT NULL,
    payment_id       text        NOT NULL,
    status           text        NOT NULL
        CONSTRAINT shipments_status_check
        CHECK (status IN ('PREPARING', 'SHIPPED', 'DELIVERED', 'CANCELLED')),
    carrier          text        NOT NULL,
    -- Chosen when the row is written (the simulated carrier's number), replaced by an operator's
    -- MarkShipmentShipped; shown only once SHIPPED.
    tracking_number  text        NOT NULL,
    tracking_url     text,
    -- mercato.common.v1.PostalAddress, protobuf-encoded as received.
    shipping_address bytea       NOT NULL,
    -- The order's total as a display string for notifications ("1000 JPY").
    order_total      text        NOT NULL DEFAULT '',
    stock_committed  boolean     NOT NULL DEFAULT false,
    -- When the worker acts next; NULL when there is nothing to do (terminal, waiting for an
    -- operator, or stalled with last_error).
    next_step_time   timestamptz,
    attempts         integer     NOT NULL DEFAULT 0 CONSTRAINT shipments_attempts_check CHECK (attempts >= 0),
    last_error       text,
    create_time      timestamptz NOT NULL,
    ship_time        timestamptz,
    deliver_time     timestamptz,
    cancel_time      timestamptz,
    update_time      timestamptz NOT NULL,
    version          bigint      NOT NULL DEFAULT 1,
    CONSTRAINT shipments_shipped_has_time CHECK (status NOT IN ('SHIPPED', 'DELIVERED') OR ship_time IS NOT NULL),
    CONSTRAINT shipments_delivered_has_time CHECK (status <> 'DELIVERED' OR deliver_time IS NOT NULL),
    CONSTRAINT shipments_terminal_is_idle CHECK (status NOT IN ('DELIVERED', 'CANCELLED') OR next_step_time IS NULL)
);

CREATE INDEX shipments_due_idx ON shipments (next_step_time) WHERE next_step_time IS NOT NULL;
CREATE INDEX shipments_listing_idx ON shipments (create_time DESC, shipment_id DESC);

CREATE TABLE shipment_lines (
    shipment_id  uuid   NOT NULL REFERENCES shipments (shipment_id) ON DELETE CASCADE,
    position     integer NOT NULL,
    sku_id       text   NOT NULL,
    sku_code     text   NOT NULL,
    product_name text   NOT NULL,
    quantity     bigint NOT NULL CONSTRAINT shipment_lines_quantity_check CHECK (quantity > 0),
    PRIMARY KEY (shipment_id, position)
);
