-- +goose Up
-- Three roles: a reader reads and queries; an operator also starts syncs,
-- jobs, uploads and sweeps and cancels its own jobs; an admin also enrols
-- and revokes nodes, manages keys and cancels any job.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check CHECK (role IN ('admin', 'operator', 'reader'));
-- A job's owner is the key that created it (jobs.created_by) and that key's
-- account, kept here so the owner is still known once the key is gone.
ALTER TABLE jobs ADD COLUMN owner_account_id BIGINT REFERENCES accounts(id) ON DELETE SET NULL;
UPDATE jobs j SET owner_account_id = k.account_id FROM api_keys k WHERE k.id = j.created_by;
CREATE INDEX jobs_created_by ON jobs (created_by);

-- +goose Down
DROP INDEX jobs_created_by;
ALTER TABLE jobs DROP COLUMN owner_account_id;
UPDATE api_keys SET role = 'reader' WHERE role = 'operator';
ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check CHECK (role IN ('admin', 'reader'));
