package store_test

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/store"
)

func TestKeyRolesAndJobOwners(t *testing.T) {
	t.Parallel()
	st, conn := catalogTestStore(t)
	ctx := t.Context()

	for _, role := range store.Roles {
		key, err := st.CreateAPIKey(ctx, "lab-x", "key-"+role, role)
		require.NoError(t, err)
		p, err := st.Authenticate(ctx, key)
		require.NoError(t, err)
		require.Equal(t, role, p.Role)
	}
	key, err := st.CreateAPIKey(ctx, "lab-x", "default-role", "")
	require.NoError(t, err)
	p, err := st.Authenticate(ctx, key)
	require.NoError(t, err)
	require.Equal(t, store.RoleAdmin, p.Role, "an empty role is an admin key, as before roles")
	_, err = st.CreateAPIKey(ctx, "lab-x", "root", "root")
	require.ErrorContains(t, err, "use one of reader, operator, admin")
	_, err = conn.Exec(ctx, `INSERT INTO api_keys (account_id, name, prefix, key_hash, role)
		SELECT id, 'raw', 'sdb_raw', '\x01', 'root' FROM accounts LIMIT 1`)
	require.ErrorContains(t, err, "api_keys_role_check", "PostgreSQL refuses an unknown role too")

	// A job remembers its key and the key's account.
	opKey, err := st.CreateAPIKey(ctx, "lab-y", "ci", store.RoleOperator)
	require.NoError(t, err)
	op, err := st.Authenticate(ctx, opKey)
	require.NoError(t, err)
	id := uuid.New()
	j, err := st.CreateJob(ctx, id, "analytics", json.RawMessage(`{}`), "job-"+id.String(), op.KeyID)
	require.NoError(t, err)
	require.Equal(t, &domain.JobOwner{KeyID: op.KeyID, KeyName: "ci", Account: "lab-y"}, j.Owner)
	var account string
	require.NoError(t, conn.QueryRow(ctx, `SELECT a.name FROM jobs j JOIN accounts a ON a.id = j.owner_account_id WHERE j.id = $1`, id).Scan(&account))
	require.Equal(t, "lab-y", account)
	jobs, err := st.Jobs(ctx, "", 10, 0)
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	require.Equal(t, j.Owner, jobs[0].Owner)
	anon := uuid.New()
	j, err = st.CreateJob(ctx, anon, "analytics", json.RawMessage(`{}`), "job-"+anon.String(), 0)
	require.NoError(t, err)
	require.Nil(t, j.Owner)

	// A revoked key authenticates no more; the job still names its owner.
	k, err := st.RevokeAPIKey(ctx, op.KeyID)
	require.NoError(t, err)
	require.NotNil(t, k.RevokedAt)
	_, err = st.Authenticate(ctx, opKey)
	require.ErrorIs(t, err, domain.ErrUnauthorized)
	j, err = st.Job(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "lab-y", j.Owner.Account)
	_, err = st.RevokeAPIKey(ctx, 999999)
	require.ErrorIs(t, err, domain.ErrNotFound)
	keys, err := st.APIKeys(ctx)
	require.NoError(t, err)
	require.Len(t, keys, 5)
	for _, k := range keys {
		require.Equal(t, k.ID == op.KeyID, k.RevokedAt != nil, k.Name)
	}
}
