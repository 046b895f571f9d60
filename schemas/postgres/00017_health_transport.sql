-- +goose Up
-- The transport of the hub's libp2p connection to a node at its last
-- answered health ping (quic-v1 or tcp; for a relayed connection, that of
-- its hop to the relay); empty before the first.
ALTER TABLE clusters ADD COLUMN health_transport TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE clusters DROP COLUMN health_transport;
