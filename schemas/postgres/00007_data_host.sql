-- +goose Up
-- The host an admin allows a node's data addresses (ClickHouse, Flight) on,
-- besides the host its libp2p connection comes from; '' for none.
ALTER TABLE clusters ADD COLUMN data_host TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE clusters DROP COLUMN data_host;
