-- Accounts, shipping addresses, refresh-token families and token-signing keys of the user service.

CREATE TABLE users (
    user_id        uuid PRIMARY KEY,
    email          text NOT NULL,
    email_verified boolean NOT NULL DEFAULT false,
    -- argon2id PHC string; NULL for accounts of an external identity provider.
    password_hash  text,
    display_name   text NOT NULL,
    description    text NOT NULL DEFAULT '',
    -- Sorted, without duplicates; always contains 'buyer'.
    roles          text[] NOT NULL DEFAULT ARRAY['buyer'],
    issuer         text NOT NULL,
    subject        text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz,
    last_login_at  timestamptz,
    CONSTRAINT users_roles_hold_buyer CHECK ('buyer' = ANY (roles))
);

-- A deleted account frees its e-mail address and its external identity.
CREATE UNIQUE INDEX users_live_email_key ON users (email) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX users_live_identity_key ON users (issuer, subject) WHERE deleted_at IS NULL;
CREATE INDEX users_created_idx ON users (created_at DESC, user_id DESC);

CREATE TABLE shipping_addresses (
    user_id             uuid PRIMARY KEY REFERENCES users (user_id),
    recipient_name      text NOT NULL,
    recipient_name_kana text NOT NULL DEFAULT '',
    country_code        text NOT NULL,
    postal_code         text NOT NULL,
    region              text NOT NULL DEFAULT '',
    locality            text NOT NULL,
    address_line1       text NOT NULL,
    address_line2       text NOT NULL DEFAULT '',
    phone_number        text NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- One family per login; every refresh token descends from it. Revoking the family ends the
-- session (logout, reuse detection, account deletion).
CREATE TABLE refresh_token_families (
    family_id  uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (user_id),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX refresh_token_families_user_idx ON refresh_token_families (user_id);

-- Only the SHA-256 of a token is stored, so a database leak yields no usable token.
CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY,
    family_id  uuid NOT NULL REFERENCES refresh_token_families (family_id),
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

-- Token-signing keys. The rotation state is derived from the times (see keys.rs): NEXT while
-- activate_at is in the future, ACTIVE for the latest activated key, RETIRED once a newer key
-- activated, REVOKED when revoked_at is set.
CREATE TABLE signing_keys (
    kid             text PRIMARY KEY,
    algorithm       text NOT NULL,
    private_key_pem text NOT NULL,
    public_jwk      jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    activate_at     timestamptz NOT NULL,
    revoked_at      timestamptz,
    -- RotateSigningKey replays: "<caller>:<idempotency key>" and a hash of the request.
    idempotency_key text UNIQUE,
    request_hash    text
);
CREATE INDEX signing_keys_activate_idx ON signing_keys (activate_at DESC);
