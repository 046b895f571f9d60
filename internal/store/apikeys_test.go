package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
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
	require.Equal(t, store.RoleReader, p.Role, "a key is a reader unless it asks for more")
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

func TestKeyLifecycle(t *testing.T) {
	t.Parallel()
	st, conn := catalogTestStore(t)
	ctx := t.Context()
	listen, err := pgx.Connect(ctx, conn.Config().ConnString())
	require.NoError(t, err)
	t.Cleanup(func() { _ = listen.Close(context.Background()) })
	_, err = listen.Exec(ctx, "LISTEN "+store.APIKeyChannel)
	require.NoError(t, err)
	notified := func() string {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		n, err := listen.WaitForNotification(wctx)
		require.NoError(t, err)
		return n.Payload
	}
	// seconds reads an interval expression of key id from PostgreSQL.
	seconds := func(expr string, id int64) float64 {
		t.Helper()
		var s float64
		require.NoError(t, conn.QueryRow(ctx, `SELECT extract(epoch FROM `+expr+`) FROM api_keys WHERE id = $1`, id).Scan(&s))
		return s
	}

	// A key with a TTL expires then, and is refused as expired.
	key, rec, err := st.NewAPIKey(ctx, store.KeySpec{Account: "lab-t", Name: "ci", Role: store.RoleOperator, TTL: 720 * time.Hour, CreatedBy: "cli"})
	require.NoError(t, err)
	require.Equal(t, "cli", rec.CreatedBy)
	require.Equal(t, store.KeyActive, rec.State)
	require.InDelta(t, (720 * time.Hour).Seconds(), seconds("expires_at - created_at", rec.ID), 0.001)
	_, err = st.Authenticate(ctx, key)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1`, rec.ID)
	require.NoError(t, err)
	_, err = st.Authenticate(ctx, key)
	require.ErrorIs(t, err, domain.ErrKeyExpired)
	require.ErrorIs(t, err, domain.ErrUnauthorized)
	_, _, _, err = st.RotateAPIKey(ctx, rec.ID, time.Hour, "cli")
	require.ErrorIs(t, err, store.ErrNotRotatable)
	require.ErrorContains(t, err, "is expired")

	// Rotation: a new key with the same name, account and role, and the old
	// key's lifetime; the old one works during the grace, then is expired.
	oldKey, old, err := st.NewAPIKey(ctx, store.KeySpec{Account: "lab-t", Name: "etl", Role: store.RoleOperator, TTL: 48 * time.Hour})
	require.NoError(t, err)
	newKey, next, replaced, err := st.RotateAPIKey(ctx, old.ID, time.Hour, "key 1 (ops)")
	require.NoError(t, err)
	require.Equal(t, strconv.FormatInt(old.ID, 10), notified())
	require.NotEqual(t, oldKey, newKey)
	require.Equal(t, []string{"etl", "lab-t", store.RoleOperator, "key 1 (ops)", store.KeyActive},
		[]string{next.Name, next.Account, next.Role, next.CreatedBy, next.State})
	require.InDelta(t, (48 * time.Hour).Seconds(), seconds("expires_at - created_at", next.ID), 0.001, "the new key lives as long as the old one did")
	require.Equal(t, store.KeyGrace, replaced.State)
	require.Equal(t, next.ID, *replaced.ReplacedBy)
	require.InDelta(t, time.Hour.Seconds(), seconds("expires_at - now()", old.ID), 5)
	for _, k := range []string{oldKey, newKey} {
		p, err := st.Authenticate(ctx, k)
		require.NoError(t, err)
		require.Equal(t, "etl", p.KeyName)
	}
	_, _, _, err = st.RotateAPIKey(ctx, old.ID, time.Hour, "cli")
	require.ErrorIs(t, err, store.ErrNotRotatable)
	require.ErrorContains(t, err, fmt.Sprintf("already rotated; key %d replaces it", next.ID))

	// A grace of 0 retires the old key at once; a grace never extends a key
	// past its own expiry.
	_, third, replaced, err := st.RotateAPIKey(ctx, next.ID, 0, "cli")
	require.NoError(t, err)
	require.Equal(t, strconv.FormatInt(next.ID, 10), notified())
	require.Equal(t, store.KeyRotated, replaced.State)
	_, err = st.Authenticate(ctx, newKey)
	require.ErrorIs(t, err, domain.ErrKeyExpired)
	short, _, err := st.NewAPIKey(ctx, store.KeySpec{Account: "lab-t", Name: "short", TTL: time.Hour})
	require.NoError(t, err)
	p, err := st.Authenticate(ctx, short)
	require.NoError(t, err)
	_, shortNext, replaced, err := st.RotateAPIKey(ctx, p.KeyID, 10*time.Hour, "cli")
	require.NoError(t, err)
	require.Equal(t, strconv.FormatInt(p.KeyID, 10), notified())
	require.InDelta(t, time.Hour.Seconds(), seconds("expires_at - created_at", replaced.ID), 0.001)

	// Revocation is announced too; revoked and unknown keys cannot be rotated.
	_, err = st.RevokeAPIKey(ctx, third.ID)
	require.NoError(t, err)
	require.Equal(t, strconv.FormatInt(third.ID, 10), notified())
	_, _, _, err = st.RotateAPIKey(ctx, third.ID, time.Hour, "cli")
	require.ErrorContains(t, err, fmt.Sprintf("api key cannot be rotated: key %d is revoked", third.ID))
	_, _, _, err = st.RotateAPIKey(ctx, 999999, time.Hour, "cli")
	require.ErrorIs(t, err, domain.ErrNotFound)

	states := map[int64]string{}
	keys, err := st.APIKeys(ctx)
	require.NoError(t, err)
	for _, k := range keys {
		states[k.ID] = k.State
	}
	require.Equal(t, map[int64]string{rec.ID: store.KeyExpired, old.ID: store.KeyGrace, next.ID: store.KeyRotated,
		third.ID: store.KeyRevoked, p.KeyID: store.KeyGrace, shortNext.ID: store.KeyActive}, states)
}

func TestTouchAPIKeys(t *testing.T) {
	t.Parallel()
	st, conn := catalogTestStore(t)
	ctx := t.Context()
	var ids []int64
	for _, name := range []string{"a", "b", "c"} {
		_, rec, err := st.NewAPIKey(ctx, store.KeySpec{Account: "lab-u", Name: name})
		require.NoError(t, err)
		require.Nil(t, rec.LastUsedAt)
		ids = append(ids, rec.ID)
	}
	t1 := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
	require.NoError(t, st.TouchAPIKeys(ctx, map[int64]time.Time{ids[0]: t1, ids[1]: t1.Add(time.Second)}))
	// An older use does not move it back; a newer one does.
	require.NoError(t, st.TouchAPIKeys(ctx, map[int64]time.Time{ids[0]: t1.Add(-time.Hour), ids[1]: t1.Add(time.Minute)}))
	require.NoError(t, st.TouchAPIKeys(ctx, nil))
	got := map[int64]*time.Time{}
	rows, err := conn.Query(ctx, `SELECT id, last_used_at FROM api_keys WHERE id = ANY($1)`, ids)
	require.NoError(t, err)
	for rows.Next() {
		var id int64
		var at *time.Time
		require.NoError(t, rows.Scan(&id, &at))
		got[id] = at
	}
	require.NoError(t, rows.Err())
	require.True(t, t1.Equal(*got[ids[0]]))
	require.True(t, t1.Add(time.Minute).Equal(*got[ids[1]]))
	require.Nil(t, got[ids[2]])
}
