-- +goose Up
-- The lifecycle of an API key. expires_at: the key authenticates until
-- then (NULL: no expiry). created_by: who made it ("cli", or the admin key
-- "key 3 (ops)" for keys made through the API; empty for keys made before
-- this was recorded). replaced_by: the key that a rotation issued in its
-- place; a replaced key stays valid until its expires_at, the end of the
-- rotation's grace period. A key with no role given is a reader.
ALTER TABLE api_keys ADD COLUMN expires_at TIMESTAMPTZ;
ALTER TABLE api_keys ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN replaced_by BIGINT REFERENCES api_keys(id) ON DELETE SET NULL;
ALTER TABLE api_keys ALTER COLUMN role SET DEFAULT 'reader';

-- +goose Down
ALTER TABLE api_keys ALTER COLUMN role SET DEFAULT 'admin';
ALTER TABLE api_keys DROP COLUMN replaced_by;
ALTER TABLE api_keys DROP COLUMN created_by;
ALTER TABLE api_keys DROP COLUMN expires_at;
