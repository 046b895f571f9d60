package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
)

// ClickHouse's exception codes (ErrorCodes.cpp), the oracle of what the
// server refused and why.
const (
	codeSyntaxError      = 62
	codeReadonly         = 164
	codeTooDeepAST       = 167
	codeTooBigAST        = 168
	codeMemoryLimit      = 241
	codeQueryProhibited  = 392
	codeTooManyRowsBytes = 396
)

// startClickHouse starts a server of the test's own under t.TempDir, with
// the query user when query is true, and stops it in t.Cleanup.
func startClickHouse(t *testing.T, name string, query bool) *ClickHouse {
	t.Helper()
	// On a new machine the server may not be installed yet (or is being
	// installed by another package's tests, which the lock waits for).
	require.NoError(t, EnsurePackages(t.Context(), slog.New(slog.DiscardHandler), []Package{{Binary: clickhouseBin, Name: "clickhouse-server"}}))
	httpPort, err := FreePort()
	require.NoError(t, err)
	tcpPort, err := FreePort()
	require.NoError(t, err)
	dir := t.TempDir()
	ch := &ClickHouse{Name: name, Dir: dir, HTTPPort: httpPort, TCPPort: tcpPort, LogFile: filepath.Join(dir, "process.log")}
	if query {
		ch.QueryUser, ch.QueryPassword = QueryUser, QueryPassword
	}
	t.Cleanup(func() { _ = ch.Stop(context.Background()) })
	require.NoError(t, ch.Start(t.Context()))
	return ch
}

func open(t *testing.T, c config.ClickHouse) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Dial(t.Context(), c, clickhouse.DefaultPool)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func admin(ch *ClickHouse) config.ClickHouse {
	return config.ClickHouse{Addr: ch.Addr(), User: "default", Database: "syndb"}
}

// drain runs a query and reads every row, returning the first error.
func drain(ctx context.Context, conn driver.Conn, sql string) error {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
	}
	return rows.Err()
}

func exceptionCode(err error) int32 {
	var ex *chgo.Exception
	if errors.As(err, &ex) {
		return ex.Code
	}
	return -1
}

// nestedCase is a SELECT of depth nested CASE expressions.
func nestedCase(depth int) string {
	return "SELECT " + strings.Repeat("CASE WHEN 1 = 1 THEN ", depth) + "1" + strings.Repeat(" ELSE 0 END", depth)
}

func TestQueryUserIsReadOnlyWithLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real ClickHouse servers")
	}
	t.Parallel()
	hub := startClickHouse(t, "clickhouse-hub", true)
	node := startClickHouse(t, "clickhouse-node", false)
	ctx := t.Context()

	// The admin user keeps its rights: migrations and ETL into the hub.
	hubAdmin, nodeAdmin := open(t, admin(hub)), open(t, admin(node))
	require.NoError(t, hubAdmin.Exec(ctx, "CREATE TABLE probe (x UInt64) ENGINE = MergeTree() ORDER BY x"))
	require.NoError(t, hubAdmin.Exec(ctx, "INSERT INTO probe SELECT number FROM numbers(10)"))
	require.NoError(t, nodeAdmin.Exec(ctx, "CREATE TABLE probe (x UInt64) ENGINE = MergeTree() ORDER BY x"))
	require.NoError(t, nodeAdmin.Exec(ctx, "INSERT INTO probe SELECT number * 3 FROM numbers(1000)"))
	var nodeCount, nodeSum uint64
	require.NoError(t, nodeAdmin.QueryRow(ctx, "SELECT count(), sum(x) FROM probe").Scan(&nodeCount, &nodeSum))

	q := open(t, hub.QueryConfig())

	t.Run("remote works as the query user", func(t *testing.T) {
		// As the API runs it: with its own max_execution_time.
		qctx := chgo.Context(ctx, chgo.WithSettings(chgo.Settings{"max_execution_time": 60}))
		var n, sum uint64
		sql := fmt.Sprintf("SELECT count(), sum(x) FROM remote('%s', 'syndb', 'probe', 'default', '')", node.Addr())
		require.NoError(t, q.QueryRow(qctx, sql).Scan(&n, &sum))
		require.Equal(t, nodeCount, n)
		require.Equal(t, nodeSum, sum)
	})

	t.Run("logged with its user", func(t *testing.T) {
		require.NoError(t, drain(ctx, q, "SELECT 'query-user-log-probe'"))
		// The server logs a query once it finished it, which may be just
		// after the client read its end: poll.
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			if !assert.NoError(ct, hubAdmin.Exec(ctx, "SYSTEM FLUSH LOGS")) {
				return
			}
			// type 2 is QueryFinish (a number on 18.16, an enum later).
			rows, err := hubAdmin.Query(ctx, "SELECT user FROM system.query_log WHERE type = 2 AND "+
				"query LIKE '%query-user-log-probe%' AND query NOT LIKE '%system.query_log%'")
			if !assert.NoError(ct, err) {
				return
			}
			defer func() { _ = rows.Close() }()
			var users []string
			for rows.Next() {
				var u string
				assert.NoError(ct, rows.Scan(&u))
				users = append(users, u)
			}
			assert.NoError(ct, rows.Err())
			assert.Equal(ct, []string{QueryUser}, users)
		}, 30*time.Second, 200*time.Millisecond)
	})

	t.Run("profile", func(t *testing.T) {
		for _, s := range QueryProfile {
			var v string
			require.NoError(t, q.QueryRow(ctx, "SELECT value FROM system.settings WHERE name = '"+s.Name+"'").Scan(&v))
			require.Equal(t, s.Value, v, s.Name)
		}
	})

	refused := []struct {
		name, sql string
		code      int32
	}{
		{"create table", "CREATE TABLE evil (x UInt8) ENGINE = Log", codeReadonly},
		{"create database", "CREATE DATABASE IF NOT EXISTS evil", codeReadonly},
		{"insert", "INSERT INTO probe SELECT 99", codeReadonly},
		{"drop", "DROP TABLE probe", codeReadonly},
		{"truncate", "TRUNCATE TABLE probe", codeReadonly},
		{"alter", "ALTER TABLE probe ADD COLUMN y UInt8", codeReadonly},
		{"alter delete", "ALTER TABLE probe DELETE WHERE x = 1", codeReadonly},
		{"optimize", "OPTIMIZE TABLE probe", codeReadonly},
		{"set readonly", "SET readonly = 0", codeReadonly},
		{"settings readonly", "SELECT 1 SETTINGS readonly = 0", codeReadonly},
		{"set allow_ddl", "SET allow_ddl = 1", codeQueryProhibited},
		{"result rows", "SELECT number FROM numbers(1000001)", codeTooManyRowsBytes},
		{"memory", "SELECT length(groupArray(number)) FROM numbers(1000000000)", codeMemoryLimit},
		{"ast depth", nestedCase(150), codeTooDeepAST},
		{"ast elements", wideSelect(250, 210), codeTooBigAST},
		{"expanded ast", expandingAliases(24), codeTooBigAST},
		{"query size", "SELECT '" + strings.Repeat("a", 300<<10) + "'", codeSyntaxError},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if strings.HasPrefix(tc.sql, "SELECT") {
				err = drain(ctx, q, tc.sql)
			} else {
				err = q.Exec(ctx, tc.sql)
			}
			require.Error(t, err)
			require.Equal(t, tc.code, exceptionCode(err), "%v", err)
		})
	}

	// Nothing changed on the hub: the oracle is the admin's own view.
	var n uint64
	require.NoError(t, hubAdmin.QueryRow(ctx, "SELECT count() FROM probe").Scan(&n))
	require.Equal(t, uint64(10), n)
	var tables uint64
	require.NoError(t, hubAdmin.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = 'syndb'").Scan(&tables))
	require.Equal(t, uint64(1), tables)
	var cols uint64
	require.NoError(t, hubAdmin.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = 'syndb' AND table = 'probe'").Scan(&cols))
	require.Equal(t, uint64(1), cols)
}

// wideSelect selects cols concat() calls of args identifiers each: about
// cols × args AST elements (one long argument list parses in quadratic time
// on 18.16, so the elements are spread over columns).
func wideSelect(cols, args int) string {
	col := "concat(" + strings.TrimSuffix(strings.Repeat("x, ", args), ", ") + ")"
	return "SELECT " + strings.TrimSuffix(strings.Repeat(col+", ", cols), ", ")
}

// expandingAliases is a small query whose aliases expand to 2^n elements.
func expandingAliases(n int) string {
	parts := []string{"1 AS a0"}
	for i := 1; i <= n; i++ {
		parts = append(parts, fmt.Sprintf("a%d + a%d AS a%d", i-1, i-1, i))
	}
	return "SELECT " + strings.Join(parts, ", ")
}

// answers polls until the server answers SELECT 1 on a new connection.
func answers(t *testing.T, c config.ClickHouse, within time.Duration) {
	t.Helper()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		conn, err := clickhouse.Dial(ctx, c, clickhouse.DefaultPool)
		if !assert.NoError(ct, err) {
			return
		}
		defer func() { _ = conn.Close() }()
		var one uint8
		assert.NoError(ct, conn.QueryRow(ctx, "SELECT 1").Scan(&one))
		assert.Equal(ct, uint8(1), one)
	}, within, 100*time.Millisecond)
}

func TestSupervisedClickHouseIsRestartedAfterItDies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real ClickHouse server")
	}
	t.Parallel()
	var logs logRecords
	hub := startClickHouse(t, "clickhouse-hub", true)
	hub.Process().Supervise(RestartPolicy{Backoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second, MaxRestarts: 5,
		Window: time.Minute}, logs.logger())
	ctx := t.Context()
	a := open(t, admin(hub))
	require.NoError(t, a.Exec(ctx, "CREATE TABLE kept (x UInt64) ENGINE = MergeTree() ORDER BY x"))
	require.NoError(t, a.Exec(ctx, "INSERT INTO kept SELECT number FROM numbers(42)"))

	first := hub.Process().Pid()
	killedAt := time.Now()
	require.NoError(t, syscall.Kill(first, syscall.SIGKILL))
	answers(t, admin(hub), time.Minute)
	t.Logf("killed ClickHouse answers again after %s", time.Since(killedAt).Round(10*time.Millisecond))
	require.NotEqual(t, first, hub.Process().Pid())
	recs := logs.with(t, "process exited, restarting")
	require.Len(t, recs, 1)
	require.Equal(t, "clickhouse-hub", recs[0]["process"])
	require.Equal(t, "signal: killed", recs[0]["status"])
	b := open(t, admin(hub))
	var n uint64
	require.NoError(t, b.QueryRow(ctx, "SELECT count() FROM kept").Scan(&n))
	require.Equal(t, uint64(42), n, "the restarted server serves its data")

	// 1,000 nested CASE expressions, as the query user. max_ast_depth is
	// checked after parsing; 18.16's parser has no depth limit of its own.
	q := open(t, hub.QueryConfig())
	before := hub.Process().Pid()
	err := drain(ctx, q, nestedCase(1000))
	require.Error(t, err, "the deep query is refused or kills the server")
	if code := exceptionCode(err); code == codeTooDeepAST {
		t.Logf("max_ast_depth stopped the deep query at the server: %v", err)
	} else {
		t.Logf("the deep query killed ClickHouse even as the query user (max_ast_depth did not stop it): %v", err)
		require.Eventually(t, func() bool { return len(logs.with(t, "process exited, restarting")) == 2 }, time.Minute,
			50*time.Millisecond, "the server's death is a logged restart")
	}
	answers(t, admin(hub), time.Minute)
	t.Logf("server pid before the deep query %d, after %d", before, hub.Process().Pid())
}
