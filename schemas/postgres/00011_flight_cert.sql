-- +goose Up
-- The SHA-256 of the certificate a node's Flight TCP listener serves over
-- TLS, as the node registers it over libp2p, in lowercase hex: the pin the
-- hub's workers check when they dial the node's grpcs:// location. Empty
-- when the node serves Flight in plaintext (or over libp2p only).
ALTER TABLE clusters ADD COLUMN flight_cert_sha256 TEXT NOT NULL DEFAULT ''
    CONSTRAINT clusters_flight_cert_sha256_check CHECK (flight_cert_sha256 ~ '^([0-9a-f]{64})?$');

-- +goose Down
ALTER TABLE clusters DROP COLUMN flight_cert_sha256;
