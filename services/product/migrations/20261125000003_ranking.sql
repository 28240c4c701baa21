-- Units sold per product, one row per (order, SKU) from order.paid. The primary key makes the
-- write idempotent on its own (on top of the consumer's inbox), so a replayed event never counts
-- twice. No foreign key to products: an event may name a product this service deleted since.
CREATE TABLE product_sales (
    order_id    UUID NOT NULL,
    sku_id      UUID NOT NULL,
    product_id  UUID NOT NULL,
    units       BIGINT NOT NULL CHECK (units > 0),
    paid_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (order_id, sku_id)
);

CREATE INDEX product_sales_window_idx ON product_sales (paid_at, product_id);
