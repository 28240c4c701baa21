-- The catalog: products and their SKUs. The stock part (next migration) keys its rows by
-- skus.id and reads products.status / skus.active to decide what is purchasable.

-- array_to_string is only STABLE (element output functions could be); for text[] it is
-- immutable, which a generated column needs.
CREATE FUNCTION catalog_tags_text(tags TEXT[]) RETURNS TEXT
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT array_to_string(tags, ' ') $$;

CREATE TABLE products (
    id            UUID PRIMARY KEY,
    seller_id     UUID NOT NULL,
    name          TEXT NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description   TEXT NOT NULL DEFAULT '' CHECK (char_length(description) <= 10000),
    category      TEXT NOT NULL DEFAULT '',
    tags          TEXT[] NOT NULL DEFAULT '{}',
    attributes    JSONB NOT NULL DEFAULT '{}'::jsonb,
    options       JSONB NOT NULL DEFAULT '[]'::jsonb,
    images        JSONB NOT NULL DEFAULT '[]'::jsonb,
    -- DRAFT, PUBLISHED, HIDDEN (mercato.common.v1.ProductStatus without the prefix).
    status        TEXT NOT NULL DEFAULT 'DRAFT' CHECK (status IN ('DRAFT', 'PUBLISHED', 'HIDDEN')),
    featured      BOOLEAN NOT NULL DEFAULT FALSE,
    version       BIGINT NOT NULL DEFAULT 1,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    published_at  TIMESTAMPTZ,
    deleted_at    TIMESTAMPTZ,
    -- Price summary over the product's active, live SKUs, kept up to date by every SKU write in
    -- the same transaction (listings filter and sort on it). NULL when no SKU is active.
    min_price_minor BIGINT,
    max_price_minor BIGINT,
    price_currency  TEXT,
    -- "Newest" ordering: the first publication time, or the creation time for drafts.
    sort_time     TIMESTAMPTZ NOT NULL,
    -- Full-text search over name, tags and description ('simple' config: no stemming, so it
    -- works for any language the shop sells in).
    search        TSVECTOR GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', name), 'A')
        || setweight(to_tsvector('simple', catalog_tags_text(tags)), 'A')
        || setweight(to_tsvector('simple', description), 'B')
    ) STORED
);

CREATE INDEX products_seller_idx ON products (seller_id, created_at DESC, id DESC);

CREATE TABLE skus (
    id              UUID PRIMARY KEY,
    product_id      UUID NOT NULL REFERENCES products (id),
    sku_code        TEXT NOT NULL CHECK (char_length(sku_code) BETWEEN 1 AND 64),
    option_values   JSONB NOT NULL DEFAULT '{}'::jsonb,
    price_minor     BIGINT NOT NULL CHECK (price_minor > 0),
    currency_code   TEXT NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    active          BOOLEAN NOT NULL DEFAULT TRUE,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    deleted_at      TIMESTAMPTZ
);

-- A SKU code is unique among active (not deleted) SKUs.
CREATE UNIQUE INDEX skus_code_live_idx ON skus (sku_code) WHERE deleted_at IS NULL;
CREATE INDEX skus_product_idx ON skus (product_id);

-- Stock per SKU, one row created with the SKU (on_hand 0). The stock part owns every change to
-- it; the catalog only reads `on_hand - reserved` as a SKU's available quantity.
CREATE TABLE stock_levels (
    sku_id      UUID PRIMARY KEY REFERENCES skus (id),
    on_hand     BIGINT NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    reserved    BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    version     BIGINT NOT NULL DEFAULT 1,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT stock_levels_reserved_le_on_hand CHECK (reserved <= on_hand)
);

CREATE INDEX products_search_idx ON products USING GIN (search);
CREATE INDEX products_tags_idx ON products USING GIN (tags);
CREATE INDEX products_listing_idx ON products (status, sort_time DESC, id DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX products_price_idx ON products (status, min_price_minor, id) WHERE deleted_at IS NULL;

-- Idempotency keys of CreateProduct / CreateSku: scoped per caller and RPC, bound to a hash of
-- the request, kept until expires_at (24 h). The row is written in the transaction that creates
-- the resource, so a key exists if and only if its resource does.
CREATE TABLE catalog_idempotency_keys (
    scope          TEXT NOT NULL,
    key            TEXT NOT NULL,
    request_hash   TEXT NOT NULL,
    resource_id    UUID NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, key)
);
