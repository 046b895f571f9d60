-- +goose Up
-- The path of the hub's libp2p connection to a node at its last answered
-- health ping: direct, hole-punched (a relayed connection upgraded by hole
-- punching) or relayed; empty before the first.
ALTER TABLE clusters ADD COLUMN health_path TEXT NOT NULL DEFAULT ''
    CONSTRAINT clusters_health_path_check CHECK (health_path IN ('', 'direct', 'hole-punched', 'relayed'));

-- +goose Down
ALTER TABLE clusters DROP COLUMN health_path;
