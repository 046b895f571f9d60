package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/store"
)

// heyResult is what hey measured of one run.
type heyResult struct {
	rps      float64
	p50, p99 time.Duration
	ok       int // 2xx answers
	errors   int // other answers and transport errors
}

var (
	heyRPS = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	// hey v0.1.5 prints "50%% in" for "50% in".
	heyPct     = regexp.MustCompile(`(?m)^\s+(\d+)%+ in ([0-9.]+) secs`)
	heyStatus  = regexp.MustCompile(`(?m)^\s+\[(\d{3})\]\s+(\d+) responses`)
	heyErrLine = regexp.MustCompile(`(?m)^\s+\[(\d+)\]\s+\S`)
)

// parseHey reads hey's summary.
func parseHey(out string) (heyResult, error) {
	var r heyResult
	m := heyRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in hey's output:\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	for _, m := range heyPct.FindAllStringSubmatch(out, -1) {
		secs, _ := strconv.ParseFloat(m[2], 64)
		d := time.Duration(secs * float64(time.Second))
		switch m[1] {
		case "50":
			r.p50 = d
		case "99":
			r.p99 = d
		}
	}
	for _, m := range heyStatus.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[2])
		if m[1][0] == '2' {
			r.ok += n
		} else {
			r.errors += n
		}
	}
	if _, errs, found := strings.Cut(out, "Error distribution:"); found {
		for _, m := range heyErrLine.FindAllStringSubmatch(errs, -1) {
			n, _ := strconv.Atoi(m[1])
			r.errors += n
		}
	}
	if r.p50 == 0 || r.p99 == 0 {
		return r, fmt.Errorf("no latency distribution in hey's output:\n%s", out)
	}
	return r, nil
}

// authBenchRoute is one route the benchmark loads.
type authBenchRoute struct {
	name string
	args []string // hey's method, body and headers, before the key
	path string
	auth bool
}

// BenchmarkAuthCache: 32 clients for 30 s (SYNDB_BENCH_AUTH_DURATION) from
// hey, a separate process on 127.0.0.1, against two extra API processes of
// the federation, one with the key cache off (SYNDB_AUTH_CACHE_TTL=0: a
// PostgreSQL read per request) and one with it on (the default), each
// route taking turns on both: unauthenticated /healthz, an authenticated
// cheap route (GET /v1/federation/clusters) and a small federated query.
// Beside requests/s, p50, p99 and errors it counts the UPDATEs of api_keys
// (a trigger records each row written) and the WAL PostgreSQL wrote, per
// request. Run it with `go tool task bench`.
func BenchmarkAuthCache(b *testing.B) {
	ctx := b.Context()
	dur := 30 * time.Second
	if v := os.Getenv("SYNDB_BENCH_AUTH_DURATION"); v != "" {
		var err error
		dur, err = time.ParseDuration(v)
		require.NoError(b, err)
	}
	root, err := devstack.RepoRoot()
	require.NoError(b, err)
	hey, err := devstack.EnsureTool(ctx, slog.New(slog.NewTextHandler(os.Stderr, nil)), root, "hey")
	require.NoError(b, err)

	conn, err := pgx.Connect(ctx, fed.Env["SYNDB_POSTGRES_DSN"])
	require.NoError(b, err)
	b.Cleanup(func() { _ = conn.Close(context.Background()) })
	st, err := store.Open(ctx, fed.Env["SYNDB_POSTGRES_DSN"])
	require.NoError(b, err)
	b.Cleanup(st.Close)
	writes := keyWriteCounter(b, conn)

	type target struct {
		name, url, key string
		keyID          int64
	}
	var targets []target
	for _, t := range []struct{ name, ttl string }{{"cache off", "0"}, {"cache on", "2s"}} {
		key, rec, err := st.NewAPIKey(ctx, store.KeySpec{Account: "bench", Name: "bench-" + strings.ReplaceAll(t.name, " ", "-")})
		require.NoError(b, err)
		b.Cleanup(func() { _, _ = st.RevokeAPIKey(context.Background(), rec.ID) })
		url := startAPIProcess(b, "api-"+strings.ReplaceAll(t.name, " ", "-"), map[string]string{"SYNDB_AUTH_CACHE_TTL": t.ttl,
			// It measures authentication, not the per-key limits: one key's 32
			// clients would otherwise be held to SYNDB_KEY_RATE.
			"SYNDB_KEY_RATE": "1000000", "SYNDB_KEY_BURST": "1000000", "SYNDB_KEY_MAX_QUERIES": "64"},
			http.DefaultClient).url
		targets = append(targets, target{name: t.name, url: url, key: key, keyID: rec.ID})
	}
	routes := []authBenchRoute{
		{name: "GET /healthz (no key)", path: "/healthz"},
		{name: "GET /v1/federation/clusters", path: "/v1/federation/clusters", auth: true},
		{name: "POST /v1/query `SELECT count() FROM neuron`", path: "/v1/query", auth: true,
			args: []string{"-m", "POST", "-T", "application/json", "-d", `{"sql": "SELECT count() FROM neuron"}`}},
	}
	for range b.N {
		var table []string
		rps := map[string]float64{}
		for _, r := range routes {
			for _, tg := range targets {
				args := append([]string{"-z", dur.String(), "-c", "32", "-t", "20"}, r.args...)
				if r.auth {
					args = append(args, "-H", "Authorization: Bearer "+tg.key)
				}
				args = append(args, tg.url+r.path)
				var lsn0 string
				require.NoError(b, conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn0))
				w0 := writes(tg.keyID)
				out, err := exec.CommandContext(ctx, hey, args...).CombinedOutput()
				require.NoError(b, err, "hey: %s", out)
				end := time.Now()
				res, err := parseHey(string(out))
				require.NoError(b, err)
				if r.auth {
					waitLastUse(b, conn, tg.keyID, end)
				}
				var wal float64
				require.NoError(b, conn.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)`, lsn0).Scan(&wal))
				n := res.ok + res.errors
				require.Positive(b, n)
				w := writes(tg.keyID) - w0
				rps[r.path+" "+tg.name] = res.rps
				b.ReportMetric(res.rps, path.Base(r.path)+"-"+strings.ReplaceAll(tg.name, " ", "-")+"-req/s")
				table = append(table, fmt.Sprintf("| %s | %s | %s | %s | %s | %d of %d | %.5f | %.1f |", r.name, tg.name,
					commas(res.rps), res.p50.Round(10*time.Microsecond), res.p99.Round(10*time.Microsecond), res.errors, n,
					float64(w)/float64(n), wal/float64(n)))
				require.Zero(b, res.errors, "%s on %s: %s", r.name, tg.name, out)
			}
		}
		var ratios []string
		for _, tg := range targets {
			ratio := rps["/v1/federation/clusters "+tg.name] / rps["/healthz "+tg.name]
			ratios = append(ratios, fmt.Sprintf("%s %.0f %%", tg.name, 100*ratio))
			b.ReportMetric(ratio, strings.ReplaceAll(tg.name, " ", "-")+"-clusters/healthz")
		}
		// One message, so that go test prints it whole.
		b.Logf("32 clients, %s each, hey on 127.0.0.1:\n"+
			"| route | API | requests/s | p50 | p99 | errors | api_keys UPDATEs per request | WAL bytes per request |\n"+
			"|---|---|---|---|---|---|---|---|\n%s\nGET /v1/federation/clusters against /healthz: %s",
			dur, strings.Join(table, "\n"), strings.Join(ratios, ", "))
	}
}

// commas prints a rate with thousands separators.
func commas(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// waitLastUse waits until the key's last use written to PostgreSQL is at
// most a second before end: the flush after a run has happened.
func waitLastUse(tb testing.TB, conn *pgx.Conn, id int64, end time.Time) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), 20*time.Second)
	defer cancel()
	require.NoError(tb, pollUntil(ctx, func() error {
		var at *time.Time
		if err := conn.QueryRow(ctx, `SELECT last_used_at FROM api_keys WHERE id = $1`, id).Scan(&at); err != nil {
			return err
		}
		if at == nil || at.Before(end.Add(-time.Second)) {
			return fmt.Errorf("key %d last used at %v, the run ended at %s", id, at, end)
		}
		return nil
	}))
}

// keyWriteCounter installs a trigger recording every row UPDATE of
// api_keys, removed when tb ends; the function it returns counts those of
// key id so far.
func keyWriteCounter(tb testing.TB, conn *pgx.Conn) func(id int64) int {
	tb.Helper()
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	table, fn, trig := "e2e_key_writes_"+suffix, "e2e_count_key_write_"+suffix, "e2e_key_write_"+suffix
	for _, q := range []string{
		`CREATE UNLOGGED TABLE ` + table + ` (id BIGINT NOT NULL)`,
		`CREATE FUNCTION ` + fn + `() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN INSERT INTO ` + table + ` (id) VALUES (NEW.id); RETURN NEW; END $$`,
		`CREATE TRIGGER ` + trig + ` AFTER UPDATE ON api_keys FOR EACH ROW EXECUTE FUNCTION ` + fn + `()`,
	} {
		_, err := conn.Exec(tb.Context(), q)
		require.NoError(tb, err)
	}
	tb.Cleanup(func() {
		// tb.Context() has ended by now.
		c, err := pgx.Connect(context.Background(), fed.Env["SYNDB_POSTGRES_DSN"])
		require.NoError(tb, err)
		defer func() { _ = c.Close(context.Background()) }()
		for _, q := range []string{`DROP TRIGGER ` + trig + ` ON api_keys`, `DROP FUNCTION ` + fn + `()`, `DROP TABLE ` + table} {
			_, err := c.Exec(context.Background(), q)
			require.NoError(tb, err)
		}
	})
	return func(id int64) int {
		var n int
		require.NoError(tb, conn.QueryRow(tb.Context(), `SELECT count(*) FROM `+table+` WHERE id = $1`, id).Scan(&n))
		return n
	}
}
