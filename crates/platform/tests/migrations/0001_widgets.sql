-- A tiny schema for the platform's own database tests.
CREATE TABLE widgets (
    id   BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL CONSTRAINT widgets_name_key UNIQUE,
    sku  TEXT NOT NULL
);

CREATE UNIQUE INDEX widgets_sku_idx ON widgets (sku);
