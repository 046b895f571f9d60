package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/store"
)

// revocationBound is how soon a revoked, rotated-out or expired key must be
// refused by every API replica.
const revocationBound = 5 * time.Second

// callAPI calls the API at base with key (none when empty).
func callAPI(t *testing.T, base, key, method, path, body string) (int, []byte) {
	t.Helper()
	status, _, raw := callAt(t, base, key, method, path, body)
	return status, raw
}

// adminCreateKey creates a key through the API as the federation's admin
// key and revokes it when the test ends.
func adminCreateKey(t *testing.T, body string) api.CreatedKey {
	t.Helper()
	status, raw := callAPI(t, fed.APIURL, fed.APIKey, http.MethodPost, "/v1/apikeys", body)
	require.Equal(t, http.StatusCreated, status, string(raw))
	var ck api.CreatedKey
	require.NoError(t, json.Unmarshal(raw, &ck))
	revokeAtEnd(t, ck.ID)
	return ck
}

func revokeAtEnd(t *testing.T, id int64) {
	t.Helper()
	t.Cleanup(func() {
		st, err := store.Open(context.Background(), fed.Env["SYNDB_POSTGRES_DSN"])
		require.NoError(t, err)
		defer st.Close()
		_, err = st.RevokeAPIKey(context.Background(), id)
		require.NoError(t, err)
	})
}

// keyAnswer is what one replica answered a key on a reader route.
func keyAnswer(t *testing.T, base, key string) (int, api.ErrorBody) {
	t.Helper()
	status, raw := callAPI(t, base, key, http.MethodGet, "/v1/federation/clusters", "")
	var eb api.ErrorBody
	if status != http.StatusOK {
		require.NoError(t, json.Unmarshal(raw, &eb), string(raw))
	}
	return status, eb
}

// refusedWithin polls the replica at base until it refuses key with 401
// and message, failing after bound; it returns when the refusal came.
func refusedWithin(t *testing.T, base, key, message string, bound time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(bound)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		status, eb := keyAnswer(t, base, key)
		if status == http.StatusUnauthorized {
			require.Equal(t, message, eb.Error.Message)
			return time.Now()
		}
		require.Equal(t, http.StatusOK, status, "%+v", eb)
		require.True(t, time.Now().Before(deadline), "%s still accepts the key %s after %s", base, key[:10], bound)
		<-tick.C
	}
}

// TestRevocationReachesEveryReplica: a key revoked through replica A (the
// federation's API), through the CLI, or behind the APIs' back in
// PostgreSQL (no notification at all) is refused by replica B, which had
// it cached, within 5 s.
func TestRevocationReachesEveryReplica(t *testing.T) {
	b := startAPIProcess(t, "api-b", nil, http.DefaultClient).url
	cases := []struct {
		name   string
		revoke func(t *testing.T, id int64)
	}{
		{"DELETE on replica A", func(t *testing.T, id int64) {
			status, raw := callAPI(t, fed.APIURL, fed.APIKey, http.MethodDelete, "/v1/apikeys/"+strconv.FormatInt(id, 10), "")
			require.Equal(t, http.StatusOK, status, string(raw))
		}},
		{"syndb apikey revoke", func(t *testing.T, id int64) {
			out := runSyndb(t, "apikey", "revoke", strconv.FormatInt(id, 10))
			require.Contains(t, out, fmt.Sprintf("revoked key %d", id))
		}},
		{"UPDATE without a notification", func(t *testing.T, id int64) {
			_, err := pg(t).Exec(t.Context(), `UPDATE api_keys SET revoked_at = now() WHERE id = $1`, id)
			require.NoError(t, err)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ck := adminCreateKey(t, `{"name": "replica-test"}`)
			for _, base := range []string{fed.APIURL, b} {
				status, eb := keyAnswer(t, base, ck.Key)
				require.Equal(t, http.StatusOK, status, "%+v", eb)
			}
			tc.revoke(t, ck.ID)
			revoked := time.Now()
			for _, base := range []string{b, fed.APIURL} {
				at := refusedWithin(t, base, ck.Key, "invalid or revoked API key", revocationBound-time.Since(revoked))
				t.Logf("%s refused the key %s after the revocation", base, at.Sub(revoked).Round(time.Millisecond))
			}
		})
	}
}

// TestExpiredKeyIsRefusedEverywhere: a key that expires is accepted until
// then and refused with "expired API key" by both replicas within 5 s of
// its expires_at, as PostgreSQL records it.
func TestExpiredKeyIsRefusedEverywhere(t *testing.T) {
	b := startAPIProcess(t, "api-b", nil, http.DefaultClient).url
	st, err := store.Open(t.Context(), fed.Env["SYNDB_POSTGRES_DSN"])
	require.NoError(t, err)
	defer st.Close()
	// The store takes any lifetime; `syndb apikey create --ttl` and the API
	// take 1 minute at least (TestAPIKeyCommand).
	key, rec, err := st.NewAPIKey(t.Context(), store.KeySpec{Account: "sec-expiry", Name: "short-lived", TTL: 3 * time.Second})
	require.NoError(t, err)
	revokeAtEnd(t, rec.ID)
	var expires time.Time
	require.NoError(t, pg(t).QueryRow(t.Context(), `SELECT expires_at FROM api_keys WHERE id = $1`, rec.ID).Scan(&expires))
	for _, base := range []string{fed.APIURL, b} {
		status, eb := keyAnswer(t, base, key)
		require.Equal(t, http.StatusOK, status, "%+v", eb)
	}
	for _, base := range []string{b, fed.APIURL} {
		at := refusedWithin(t, base, key, "expired API key", time.Until(expires)+revocationBound)
		require.False(t, at.Before(expires), "%s refused the key before it expired", base)
		t.Logf("%s refused the key %s after it expired", base, at.Sub(expires).Round(time.Millisecond))
	}
}

// TestRotation: a rotation issues a new key that both replicas accept at
// once; the old key works during the grace and is refused as expired
// within 5 s of its end; the list shows both.
func TestRotation(t *testing.T) {
	b := startAPIProcess(t, "api-b", nil, http.DefaultClient).url
	old := adminCreateKey(t, `{"name": "rotate-me", "account": "sec-rotation", "role": "operator", "ttl_seconds": 3600}`)
	require.Equal(t, store.RoleOperator, old.Role)
	for _, base := range []string{fed.APIURL, b} {
		status, eb := keyAnswer(t, base, old.Key)
		require.Equal(t, http.StatusOK, status, "%+v", eb)
	}
	status, raw := callAPI(t, b, fed.APIKey, http.MethodPost, fmt.Sprintf("/v1/apikeys/%d/rotate", old.ID), `{"grace_seconds": 3}`)
	require.Equal(t, http.StatusCreated, status, string(raw))
	var rk api.RotatedKey
	require.NoError(t, json.Unmarshal(raw, &rk))
	revokeAtEnd(t, rk.ID)
	require.NotEqual(t, old.Key, rk.Key)
	require.Equal(t, []string{"rotate-me", "sec-rotation", store.RoleOperator, store.KeyActive},
		[]string{rk.Name, rk.Account, rk.Role, rk.State})
	require.Equal(t, store.KeyGrace, rk.Replaces.State)
	require.Equal(t, rk.ID, *rk.Replaces.ReplacedBy)

	conn := pg(t)
	var graceEnd time.Time
	var lifetime, grace float64
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT o.expires_at, extract(epoch FROM n.expires_at - n.created_at),
		extract(epoch FROM o.expires_at - n.created_at) FROM api_keys o, api_keys n WHERE o.id = $1 AND n.id = $2`,
		old.ID, rk.ID).Scan(&graceEnd, &lifetime, &grace))
	require.InDelta(t, 3600, lifetime, 0.001, "the new key lives as long as the old one")
	require.InDelta(t, 3, grace, 0.001)
	for _, base := range []string{fed.APIURL, b} {
		for _, k := range []string{rk.Key, old.Key} {
			status, eb := keyAnswer(t, base, k)
			require.Equal(t, http.StatusOK, status, "%s during the grace: %+v", base, eb)
		}
	}
	require.True(t, time.Now().Before(graceEnd), "the checks above ran within the grace")
	for _, base := range []string{fed.APIURL, b} {
		at := refusedWithin(t, base, old.Key, "expired API key", time.Until(graceEnd)+revocationBound)
		require.False(t, at.Before(graceEnd), "%s refused the old key during its grace", base)
		status, eb := keyAnswer(t, base, rk.Key)
		require.Equal(t, http.StatusOK, status, "the new key still works: %+v", eb)
	}

	status, raw = callAPI(t, fed.APIURL, fed.APIKey, http.MethodGet, "/v1/apikeys", "")
	require.Equal(t, http.StatusOK, status)
	var list api.KeyList
	require.NoError(t, json.Unmarshal(raw, &list))
	got := map[int64]store.APIKey{}
	for _, k := range list.Keys {
		got[k.ID] = k
	}
	require.Equal(t, store.KeyRotated, got[old.ID].State)
	require.Equal(t, store.KeyActive, got[rk.ID].State)
	var adminID int64
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT id FROM api_keys WHERE key_hash = $1`, keyHash(fed.APIKey)).Scan(&adminID))
	require.Equal(t, fmt.Sprintf("key %d (dev)", adminID), got[rk.ID].CreatedBy)
	require.NotNil(t, got[rk.ID].ExpiresAt)
	status, raw = callAPI(t, fed.APIURL, fed.APIKey, http.MethodPost, fmt.Sprintf("/v1/apikeys/%d/rotate", old.ID), `{}`)
	requireError(t, http.StatusConflict, status, raw, "conflict", "a rotated key cannot be rotated again")
	status, raw = callAPI(t, fed.APIURL, fed.APIKey, http.MethodPost, fmt.Sprintf("/v1/apikeys/%d/rotate", rk.ID), `{"grace_seconds": 2592001}`)
	requireError(t, http.StatusBadRequest, status, raw, "bad_request", "a grace past 30 days")
}

func keyHash(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// runSyndb runs the syndb binary with the federation's settings, from a
// directory without a dev env file, and returns its standard output; it
// fails the test when the command fails.
func runSyndb(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := trySyndb(t, args...)
	require.NoError(t, err, "syndb %s: %s", strings.Join(args, " "), errOut)
	return out
}

func trySyndb(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), syndbBin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "SYNDB_POSTGRES_DSN="+fed.Env["SYNDB_POSTGRES_DSN"])
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// TestAPIKeyCommand runs `syndb apikey`: create makes a reader unless
// --role says otherwise, --ttl sets the expiry (in range only); list shows
// each key's row; rotate and revoke act on the API.
func TestAPIKeyCommand(t *testing.T) {
	conn := pg(t)
	// record reads a key's row from PostgreSQL by the key's hash.
	record := func(key string) (id int64, role, by string, ttl *float64) {
		t.Helper()
		require.NoError(t, conn.QueryRow(t.Context(), `SELECT id, role, created_by, extract(epoch FROM expires_at - created_at)
			FROM api_keys WHERE key_hash = $1`, keyHash(key)).Scan(&id, &role, &by, &ttl))
		revokeAtEnd(t, id)
		return id, role, by, ttl
	}
	name := fmt.Sprintf("cli-%d", time.Now().UnixNano())
	reader := strings.TrimSpace(runSyndb(t, "apikey", "create", "--name", name))
	require.True(t, strings.HasPrefix(reader, store.KeyPrefix), reader)
	id, role, by, ttl := record(reader)
	require.Equal(t, []string{store.RoleReader, "cli"}, []string{role, by}, "least privilege by default")
	require.Nil(t, ttl)
	status, eb := keyAnswer(t, fed.APIURL, reader)
	require.Equal(t, http.StatusOK, status, "%+v", eb)
	status, raw := keyDo(t, reader, http.MethodPost, "/v1/federation/health/sweep", "")
	requireError(t, http.StatusForbidden, status, raw, "forbidden", "a reader cannot sweep")

	admin := strings.TrimSpace(runSyndb(t, "apikey", "create", "--name", name+"-admin", "--role", "admin", "--ttl", "720h"))
	_, role, _, ttl = record(admin)
	require.Equal(t, store.RoleAdmin, role)
	require.NotNil(t, ttl)
	require.InDelta(t, (720 * time.Hour).Seconds(), *ttl, 0.001)
	for _, bad := range [][]string{{"--ttl", "30s"}, {"--ttl", "9000h"}, {"--role", "root"}} {
		_, errOut, err := trySyndb(t, append([]string{"apikey", "create", "--name", name + "-bad"}, bad...)...)
		require.Error(t, err, bad)
		require.Contains(t, errOut, bad[0], bad)
	}
	require.Zero(t, countRows(t, conn, `SELECT count(*) FROM api_keys WHERE name = $1`, name+"-bad"), "nothing was created")

	list := runSyndb(t, "apikey", "list")
	lines := strings.Split(list, "\n")
	require.Equal(t, []string{"ID", "NAME", "ACCOUNT", "ROLE", "PREFIX", "CREATED", "CREATED BY", "EXPIRES", "LAST USED", "STATE"},
		regexpSplitCols(lines[0]))
	var row []string
	for _, l := range lines[1:] {
		if f := regexpSplitCols(l); len(f) > 0 && f[0] == strconv.FormatInt(id, 10) {
			row = f
		}
	}
	require.Len(t, row, 10, list)
	require.Equal(t, []string{name, "default", store.RoleReader, reader[:10], "cli", "-"}, []string{row[1], row[2], row[3], row[4], row[6], row[7]})
	require.Equal(t, store.KeyActive, row[9])

	rotated := strings.TrimSpace(runSyndb(t, "apikey", "rotate", strconv.FormatInt(id, 10), "--grace", "0"))
	newID, role, by, _ := record(rotated)
	require.Equal(t, []string{store.RoleReader, "cli"}, []string{role, by})
	refusedWithin(t, fed.APIURL, reader, "expired API key", revocationBound)
	status, eb = keyAnswer(t, fed.APIURL, rotated)
	require.Equal(t, http.StatusOK, status, "%+v", eb)
	_, errOut, err := trySyndb(t, "apikey", "rotate", strconv.FormatInt(id, 10))
	require.Error(t, err)
	require.Contains(t, errOut, fmt.Sprintf("already rotated; key %d replaces it", newID))
	_, errOut, err = trySyndb(t, "apikey", "rotate", strconv.FormatInt(newID, 10), "--grace", "-1s")
	require.Error(t, err)
	require.Contains(t, errOut, "--grace: -1s is outside 0s..720h0m0s")
	runSyndb(t, "apikey", "revoke", strconv.FormatInt(newID, 10))
	refusedWithin(t, fed.APIURL, rotated, "invalid or revoked API key", revocationBound)
	_, errOut, err = trySyndb(t, "apikey", "revoke", "nope")
	require.Error(t, err)
	require.Contains(t, errOut, `key ID "nope"`)
}

// regexpSplitCols splits a table line at runs of two spaces or more.
func regexpSplitCols(line string) []string {
	line = strings.TrimSpace(line)
	if line == "" {
		return nil
	}
	var out []string
	for f := range strings.SplitSeq(line, "  ") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// TestKeyUseIsWrittenInBatches: many requests with one key cost a handful
// of UPDATEs of api_keys (a trigger counts every row written), and the
// key's last use is in PostgreSQL within seconds of the requests.
func TestKeyUseIsWrittenInBatches(t *testing.T) {
	ck := adminCreateKey(t, `{"name": "batched"}`)
	conn := pg(t)
	writes := keyWriteCounter(t, conn)
	// Within the key's burst (SYNDB_KEY_BURST, 100): this counts writes,
	// not the rate limit.
	const n = 90
	first := time.Now()
	for range n {
		status, eb := keyAnswer(t, fed.APIURL, ck.Key)
		require.Equal(t, http.StatusOK, status, "%+v", eb)
	}
	last := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	var used time.Time
	require.NoError(t, pollUntil(ctx, func() error {
		var at *time.Time
		if err := conn.QueryRow(ctx, `SELECT last_used_at FROM api_keys WHERE id = $1`, ck.ID).Scan(&at); err != nil {
			return err
		}
		if at == nil || at.Before(last.Add(-time.Second)) {
			return fmt.Errorf("last_used_at is %v, the last request was at %s", at, last)
		}
		used = *at
		return nil
	}))
	require.False(t, used.Before(first), "last_used_at %s is before the first request %s", used, first)
	require.False(t, used.After(time.Now()))
	w := writes(ck.ID)
	t.Logf("%d requests in %s: %d UPDATEs of the key's row", n, last.Sub(first).Round(time.Millisecond), w)
	// One flush every 5 s while the requests ran, and the one after them.
	require.LessOrEqual(t, w, int(last.Sub(first)/(5*time.Second))+2)
	require.GreaterOrEqual(t, w, 1)
}
