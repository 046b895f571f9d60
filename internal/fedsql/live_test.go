package fedsql

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/migrate"
	"github.com/syndb/federation/schemas"
)

// The live tests compile queries for two nodes and run them on real
// ClickHouse servers: a hub, whose read-only query user runs the compiled
// statement, and a warehouse server holding both nodes' databases (lab_a,
// lab_b) and the oracle database, which holds the rows of both. The
// oracle's answer is ClickHouse's own: the user's query run directly over
// the union of the nodes' rows.

func TestMain(m *testing.M) {
	code := m.Run()
	live.stop()
	os.Exit(code)
}

// liveFed is the package's one pair of servers, started by the first live
// test and stopped by TestMain.
type liveFed struct {
	once      sync.Once
	err       error
	dir       string
	hub, node *devstack.ClickHouse
	query     driver.Conn // the hub's query user
	oracle    driver.Conn // database oracle on the warehouse server
	cat       Catalog
	targets   []Target
}

var live liveFed

// liveFixture is what each node's database holds, table by table: a
// column list, then its rows. The oracle holds both nodes' rows. The
// nodes' datasets differ, their group keys (parent_enum, neuron_type)
// overlap: the hub merges groups that both nodes hold, that one holds, and
// whose values are all NULL on one node or on both.
var liveFixture = map[string][]liveRows{
	"lab_a": {
		{"neuron", "dataset_id, cid, parent_enum, voxel_volume, neuron_type, terminal_count", [][]string{
			{uuidA, "'00000000-0000-0000-0000-0000000000a1'", "1", "NULL", "'x'", "NULL"},
			{uuidA, "'00000000-0000-0000-0000-0000000000a2'", "2", "2.5", "''", "3"},
			{uuidA, "'00000000-0000-0000-0000-0000000000a3'", "3", "NULL", "NULL", "NULL"},
		}},
		{"axon", "dataset_id, cid, parent_enum, voxel_volume, branch_count", [][]string{
			{uuidA, "'00000000-0000-0000-0000-0000000000a4'", "1", "NULL", "NULL"},
			{uuidA, "'00000000-0000-0000-0000-0000000000a5'", "2", "0.5", "4"},
		}},
	},
	"lab_b": {
		{"neuron", "dataset_id, cid, parent_enum, voxel_volume, neuron_type, terminal_count", [][]string{
			{uuidB, "'00000000-0000-0000-0000-0000000000b1'", "1", "NULL", "NULL", "NULL"},
			{uuidB, "'00000000-0000-0000-0000-0000000000b2'", "2", "1.5", "'y'", "7"},
			{uuidB, "'00000000-0000-0000-0000-0000000000b3'", "4", "0.25", "'x'", "1"},
		}},
		{"axon", "dataset_id, cid, parent_enum, voxel_volume, branch_count", [][]string{
			{uuidB, "'00000000-0000-0000-0000-0000000000b4'", "1", "NULL", "NULL"},
			{uuidB, "'00000000-0000-0000-0000-0000000000b5'", "2", "1.5", "NULL"},
			{uuidB, "'00000000-0000-0000-0000-0000000000b6'", "3", "NULL", "6"},
		}},
	},
}

const (
	uuidA = "'00000000-0000-0000-0000-00000000000a'"
	uuidB = "'00000000-0000-0000-0000-00000000000b'"
)

// liveRows are rows of one table, each value as SQL.
type liveRows struct {
	table, cols string
	rows        [][]string
}

// fill inserts rs on conn, a row an INSERT … SELECT: ClickHouse converts
// each value to its column's type (INSERT … VALUES over the native protocol
// needs the client to send the data as blocks).
func (rs liveRows) fill(ctx context.Context, conn driver.Conn) error {
	for _, r := range rs.rows {
		if err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s (%s) SELECT %s", rs.table, rs.cols, strings.Join(r, ", "))); err != nil {
			return fmt.Errorf("insert into %s: %w", rs.table, err)
		}
	}
	return nil
}

// liveTables are the tables liveFixture fills.
var liveTables = []string{"neuron", "axon"}

// startLive starts the servers once, or skips t in -short mode.
func startLive(t *testing.T) *liveFed {
	t.Helper()
	if testing.Short() {
		t.Skip("starts ClickHouse")
	}
	live.once.Do(func() { live.err = live.start(context.Background()) })
	require.NoError(t, live.err)
	return &live
}

func (l *liveFed) start(ctx context.Context) error {
	if err := devstack.EnsurePackages(ctx, slog.New(slog.DiscardHandler),
		[]devstack.Package{{Binary: "/usr/sbin/clickhouse-server", Name: "clickhouse-server"}}); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "fedsql-live-")
	if err != nil {
		return fmt.Errorf("make the servers' directory: %w", err)
	}
	l.dir = dir
	for _, s := range []struct {
		name  string
		ch    **devstack.ClickHouse
		query bool
	}{{"node", &l.node, false}, {"hub", &l.hub, true}} {
		httpPort, err := devstack.FreePort()
		if err != nil {
			return err
		}
		tcpPort, err := devstack.FreePort()
		if err != nil {
			return err
		}
		ch := &devstack.ClickHouse{Name: "fedsql-" + s.name, Dir: filepath.Join(dir, s.name), HTTPPort: httpPort, TCPPort: tcpPort,
			LogFile: filepath.Join(dir, s.name+".log")}
		if s.query {
			ch.QueryUser, ch.QueryPassword = devstack.QueryUser, devstack.QueryPassword
		}
		*s.ch = ch
		if err := ch.Start(ctx); err != nil {
			return fmt.Errorf("start the %s's ClickHouse: %w", s.name, err)
		}
	}
	migs, err := schemas.ClickHouseMigrations()
	if err != nil {
		return err
	}
	for _, db := range []string{"lab_a", "lab_b", "oracle"} {
		conn, err := clickhouse.Open(ctx, config.ClickHouse{Addr: l.node.Addr(), User: "default", Database: db})
		if err != nil {
			return err
		}
		if _, err := migrate.Apply(ctx, conn, migs, 0); err != nil {
			_ = conn.Close()
			return fmt.Errorf("migrate %s: %w", db, err)
		}
		for _, rs := range liveFixture[db] {
			if err := rs.fill(ctx, conn); err != nil {
				_ = conn.Close()
				return fmt.Errorf("fill %s: %w", db, err)
			}
		}
		if db == "oracle" {
			for _, table := range liveTables {
				for _, from := range []string{"lab_a", "lab_b"} {
					if err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO oracle.%s SELECT * FROM %s.%s", table, from, table)); err != nil {
						_ = conn.Close()
						return fmt.Errorf("fill the oracle's %s: %w", table, err)
					}
				}
			}
			l.oracle = conn
			continue
		}
		if err := conn.Close(); err != nil {
			return fmt.Errorf("close %s: %w", db, err)
		}
	}
	versions := migrate.ColumnVersions(migs)
	delete(versions, migrate.LedgerTable)
	l.cat = NewCatalog(versions, migrate.ColumnOrder(migs)).WithTypes(migrate.ColumnTypes(migs))
	l.targets = []Target{
		{Name: "lab-a", Addr: l.node.Addr(), Database: "lab_a", User: "default"},
		{Name: "lab-b", Addr: l.node.Addr(), Database: "lab_b", User: "default"},
	}
	l.query, err = clickhouse.Dial(ctx, l.hub.QueryConfig(), clickhouse.DefaultPool)
	return err
}

func (l *liveFed) stop() {
	for _, c := range []driver.Conn{l.query, l.oracle} {
		if c != nil {
			_ = c.Close()
		}
	}
	for _, ch := range []*devstack.ClickHouse{l.hub, l.node} {
		if ch != nil {
			_ = ch.Stop(context.Background())
		}
	}
	if l.dir != "" {
		_ = os.RemoveAll(l.dir)
	}
}

// answer is a query's result: each column's ClickHouse type, and each row's
// values as text (NULL for NULL).
type answer struct {
	types []string
	rows  [][]string
}

// readAnswer runs sql on conn; drop names a column to leave out (the
// hub's _node, which the oracle's rows do not carry).
func readAnswer(ctx context.Context, conn driver.Conn, sql, drop string) (answer, error) {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return answer{}, err
	}
	defer func() { _ = rows.Close() }()
	var a answer
	var keep []int
	for i, ct := range rows.ColumnTypes() {
		if ct.Name() == drop {
			continue
		}
		keep = append(keep, i)
		a.types = append(a.types, ct.DatabaseTypeName())
	}
	cts := rows.ColumnTypes()
	for rows.Next() {
		vals := make([]any, len(cts))
		for i, ct := range cts {
			vals[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(vals...); err != nil {
			return answer{}, fmt.Errorf("read a row: %w", err)
		}
		row := make([]string, 0, len(keep))
		for _, i := range keep {
			row = append(row, text(reflect.ValueOf(vals[i]).Elem()))
		}
		a.rows = append(a.rows, row)
	}
	return a, rows.Err()
}

// text prints a scanned value, NULL for a nil pointer.
func text(v reflect.Value) string {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "NULL"
		}
		v = v.Elem()
	}
	return fmt.Sprint(v.Interface())
}

// federated compiles sql for both nodes and runs it on the hub as its
// query user, as /v1/query does.
func (l *liveFed) federated(t *testing.T, sql string) (answer, error) {
	t.Helper()
	p, err := Parse(sql, l.cat, Options{MaxRows: 1000, MaxSeconds: 60})
	if err != nil {
		return answer{}, err
	}
	plan, err := p.Plan(l.targets)
	if err != nil {
		return answer{}, err
	}
	ctx := t.Context()
	if len(p.Settings) > 0 {
		ctx = chgo.Context(ctx, chgo.WithSettings(chgo.Settings(p.Settings)))
	}
	drop := ""
	if !strings.Contains(sql, NodeColumn) {
		drop = NodeColumn
	}
	a, err := readAnswer(ctx, l.query, plan.SQL, drop)
	if err != nil {
		return answer{}, fmt.Errorf("%w\ncompiled: %s", err, plan.Merge)
	}
	return a, nil
}

// requireOracle asserts that the federated answer to sql is ClickHouse's
// own over the union of the nodes' rows: the same column types and the same
// rows, in the same order when ordered.
func (l *liveFed) requireOracle(t *testing.T, sql string, ordered bool) answer {
	t.Helper()
	want, err := readAnswer(t.Context(), l.oracle, sql, "")
	require.NoError(t, err, "the oracle answers %s", sql)
	got, err := l.federated(t, sql)
	require.NoError(t, err, sql)
	if !ordered {
		for _, a := range []answer{want, got} {
			slices.SortFunc(a.rows, func(x, y []string) int { return slices.Compare(x, y) })
		}
	}
	assert.Equal(t, want.rows, got.rows, "rows of %s", sql)
	assert.Equal(t, want.types, got.types, "column types of %s", sql)
	return got
}

// TestLiveNullSelectItem: a select item, sort key or group key whose
// value is a constant NULL (the literal, or a constant that ClickHouse
// computes to NULL) answers as ClickHouse answers it directly, type
// included. materialize() keeps such a constant a constant on 18.16, and the
// hub's UNION ALL of the nodes' rows refused it ("non constant in source
// stream but must be constant in result").
func TestLiveNullSelectItem(t *testing.T) {
	t.Parallel()
	l := startLive(t)
	for _, tc := range []struct {
		sql     string
		ordered bool
	}{
		{"SELECT NULL AS x, cid FROM neuron", false},
		{"SELECT NULL AS x, cid FROM neuron ORDER BY cid", true},
		{"SELECT cid, NULL FROM neuron ORDER BY NULL, cid LIMIT 3", true},
		{"SELECT DISTINCT NULL AS x FROM neuron", false},
		{"SELECT NULL AS x, count() AS n FROM neuron GROUP BY x", false},
		{"SELECT nullIf(1, 1) AS a, toNullable(NULL) AS b, toInt32OrNull('no') AS c, CASE WHEN 0 THEN 1 END AS d, cid FROM neuron", false},
		{"SELECT if(1, NULL, 2) AS a, [NULL] AS b, tuple(1, NULL) AS c, toNullable(1) AS d, cid FROM axon", false},
		{"SELECT NULL AS x, cid FROM neuron UNION ALL SELECT NULL AS x, cid FROM axon", false},
	} {
		t.Run(tc.sql, func(t *testing.T) { l.requireOracle(t, tc.sql, tc.ordered) })
	}
}

// TestLiveNullableExpressionAggregates: an aggregate of an expression that
// is Nullable (it reads a Nullable column, holds NULL, or is nullIf or a
// CASE without ELSE) answers NULL where every value is NULL, as ClickHouse
// does, and its sum, extreme or average over the rest where some are set;
// an aggregate of an expression that is not Nullable (coalesce, isNull,
// OR on 18.16, a function of an array) still answers 0 of no rows.
func TestLiveNullableExpressionAggregates(t *testing.T) {
	t.Parallel()
	l := startLive(t)
	for _, sql := range []string{
		"SELECT sum(branch_count + 1) AS s FROM axon",
		"SELECT sum(branch_count + 1) AS s FROM axon WHERE branch_count IS NULL",
		"SELECT sum(branch_count + 1) AS s, max(branch_count * 2) AS m FROM axon WHERE dataset_id = toUUID('00000000-0000-0000-0000-000000000000')",
		"SELECT parent_enum, sum(branch_count + 1) AS s, max(if(branch_count > 0, voxel_volume, NULL)) AS m FROM axon GROUP BY parent_enum",
		"SELECT parent_enum, avg(terminal_count * 2) AS a, min(lower(neuron_type)) AS t, argMax(cid, voxel_volume * 2) AS c, " +
			"count(DISTINCT voxel_volume + 0) AS d, uniq(concat(neuron_type, '!')) AS u FROM neuron GROUP BY parent_enum",
		"SELECT max(CASE WHEN parent_enum = 1 THEN voxel_volume END) AS m, sum(nullIf(parent_enum, 1)) AS n FROM neuron WHERE parent_enum = 1",
		"SELECT neuron_type, max(toString(terminal_count)) AS m, sum(NULL) AS z FROM neuron GROUP BY neuron_type",
		"SELECT sum(coalesce(branch_count, 0)) AS s, sum(isNull(branch_count)) AS n, sum(branch_count > 1 OR parent_enum > 5) AS o, " +
			"sum(length([branch_count])) AS l, sum(ifNull(branch_count, 1)) AS f FROM axon WHERE branch_count IS NULL AND parent_enum > 5",
		"SELECT sum(coalesce(branch_count, 0)) AS s, max(assumeNotNull(branch_count)) AS m FROM axon",
	} {
		t.Run(sql, func(t *testing.T) { l.requireOracle(t, sql, false) })
	}
}

// TestLiveExtractAndNullsOrder: extract(s, pattern) and ORDER BY …
// NULLS FIRST / NULLS LAST answer as ClickHouse does: the nodes cut their
// rows by the same order, and the hub's merge orders by it again.
func TestLiveExtractAndNullsOrder(t *testing.T) {
	t.Parallel()
	l := startLive(t)
	for _, tc := range []struct {
		sql     string
		ordered bool
	}{
		{"SELECT cid, extract(neuron_type, '[a-z]+') AS e FROM neuron", false},
		{"SELECT extract(neuron_type, 'x') AS e, count() AS n, max(extract(toString(voxel_volume), '[0-9]+')) AS m FROM neuron GROUP BY e", false},
		{"SELECT cid FROM neuron WHERE extract(neuron_type, '^.') = 'x'", false},
		{"SELECT cid, voxel_volume FROM neuron ORDER BY voxel_volume DESC NULLS FIRST, cid LIMIT 4", true},
		{"SELECT cid, voxel_volume FROM neuron ORDER BY voxel_volume NULLS FIRST, cid", true},
		{"SELECT cid, voxel_volume FROM neuron ORDER BY voxel_volume ASC NULLS LAST, cid DESC LIMIT 3", true},
		{"select cid, voxel_volume from neuron order by voxel_volume desc nulls last, cid limit 1, 3", true},
		{"SELECT parent_enum, max(voxel_volume) AS m FROM neuron GROUP BY parent_enum ORDER BY m DESC NULLS FIRST, parent_enum", true},
		{"SELECT parent_enum, sum(branch_count + 1) AS s FROM axon GROUP BY parent_enum ORDER BY s NULLS FIRST, parent_enum LIMIT 2", true},
		{"SELECT DISTINCT voxel_volume FROM axon ORDER BY voxel_volume NULLS FIRST", true},
		{"SELECT cid, neuron_type FROM neuron ORDER BY neuron_type DESC NULLS FIRST, cid LIMIT 2 BY neuron_type", true},
	} {
		t.Run(tc.sql, func(t *testing.T) { l.requireOracle(t, tc.sql, tc.ordered) })
	}
}

// TestLiveCastToParameterisedType: CAST to a type with arguments
// (Nullable(UInt8), Decimal(10, 2), FixedString(3)) answers as ClickHouse
// does; the compiled statement's check read such a type as a function call
// and refused it.
func TestLiveCastToParameterisedType(t *testing.T) {
	t.Parallel()
	l := startLive(t)
	for _, sql := range []string{
		"SELECT CAST(voxel_volume AS Nullable(Float32)) AS a, CAST(NULL AS Nullable(UInt8)) AS b, CAST(1.5 AS Decimal(10, 2)) AS c, " +
			"CAST(neuron_type AS Nullable(FixedString(3))) AS d, CAST(terminal_count AS Nullable(String)) AS e, cid FROM neuron",
		"SELECT parent_enum, sum(CAST(terminal_count AS Nullable(UInt64))) AS s, max(CAST(cid AS String)) AS m FROM neuron GROUP BY parent_enum",
		"SELECT CAST(1 AS UInt8) AS one, CAST(2.5 AS Float32) AS f, cid FROM neuron",
	} {
		t.Run(sql, func(t *testing.T) { l.requireOracle(t, sql, false) })
	}
}

// TestLiveNullableIfCombinators: an aggregate with the -If combinator
// whose value or condition is Nullable answers as ClickHouse 18.16 does: of
// type Nullable(T), and NULL where no row has every argument set (the
// condition included), whether or not the condition holds. countIf of a
// Nullable condition is Nullable too; of arguments that are not, it and
// the rest are not.
func TestLiveNullableIfCombinators(t *testing.T) {
	t.Parallel()
	l := startLive(t)
	for _, sql := range []string{
		"SELECT sumIf(voxel_volume, parent_enum = 1) AS s, avgIf(voxel_volume, parent_enum = 1) AS a, maxIf(voxel_volume, parent_enum = 1) AS m, " +
			"uniqIf(voxel_volume, parent_enum = 1) AS u, countIf(voxel_volume, parent_enum = 1) AS c, countIf(parent_enum = 1) AS n FROM neuron",
		"SELECT sumIf(voxel_volume, 1) AS s, avgIf(voxel_volume, 1) AS a, maxIf(voxel_volume, 1) AS m, uniqIf(voxel_volume, 1) AS u, " +
			"countIf(voxel_volume, 1) AS c FROM neuron WHERE parent_enum = 1",
		"SELECT sumIf(voxel_volume, parent_enum = 2) AS s, minIf(terminal_count, 1) AS m, countIf(parent_enum = 2) AS c, countIf(1) AS n " +
			"FROM neuron WHERE parent_enum > 100",
		"SELECT sumIf(1, neuron_type = 'x') AS s, countIf(neuron_type = 'x') AS c, maxIf(cid, neuron_type = 'x') AS m FROM neuron WHERE neuron_type IS NULL",
		"SELECT parent_enum, sumIf(voxel_volume, terminal_count > 0) AS s, countIf(terminal_count > 2) AS c, argMaxIf(cid, voxel_volume, neuron_type != '') AS a, " +
			"quantileIf(0.5)(voxel_volume, parent_enum = 2) AS q, uniqExactIf(neuron_type, 1) AS u, anyIf(neuron_type, terminal_count > 5) AS y FROM neuron GROUP BY parent_enum",
		"SELECT countIf(cid = cid) AS c, sumIf(1, cid != cid) AS s, groupArrayIf(voxel_volume, parent_enum = 1) AS g FROM neuron WHERE parent_enum > 100",
		"SELECT neuron_type, sumIf(voxel_volume + 1, terminal_count IS NOT NULL) AS s, countIf(voxel_volume > 1 OR parent_enum > 1) AS o FROM neuron GROUP BY neuron_type",
	} {
		t.Run(sql, func(t *testing.T) { l.requireOracle(t, sql, false) })
	}
}

// TestLiveNullableNames: an aggregate of a name that stands for a Nullable
// expression answers NULL where every value is NULL, as ClickHouse does: a
// FROM subquery's column (Nullable where its expression is, in any SELECT
// of a UNION ALL, an aggregate's included), a select alias, a WITH name
// and an ARRAY JOIN alias. A name that stands for an expression never
// NULL (coalesce, count) still answers 0 of no rows.
func TestLiveNullableNames(t *testing.T) {
	t.Parallel()
	l := startLive(t)
	for _, sql := range []string{
		"SELECT count() AS n, sum(voxel_volume) AS s FROM (SELECT voxel_volume FROM neuron WHERE parent_enum = 1)",
		"SELECT sum(v) AS s, max(w) AS m, sum(q.v) AS t FROM (SELECT voxel_volume AS v, terminal_count + 1 AS w FROM neuron WHERE parent_enum = 1) AS q",
		"SELECT sum(voxel_volume) AS s, uniq(neuron_type) AS u FROM (SELECT * FROM neuron WHERE parent_enum = 3)",
		"SELECT sum(w) AS s FROM (SELECT voxel_volume AS v, v + 1 AS w FROM neuron WHERE parent_enum = 1)",
		"SELECT max(s) AS m, sum(c) AS n FROM (SELECT parent_enum, sum(voxel_volume) AS s, count(voxel_volume) AS c FROM neuron GROUP BY parent_enum) WHERE parent_enum = 1",
		"SELECT sum(v) AS s FROM (SELECT 1.5 AS v FROM neuron WHERE parent_enum = 1 UNION ALL SELECT voxel_volume AS v FROM axon WHERE parent_enum = 1)",
		"SELECT sum(v) AS s FROM (SELECT coalesce(voxel_volume, 1) AS v FROM neuron WHERE parent_enum > 10 UNION ALL SELECT voxel_volume FROM axon WHERE parent_enum > 10)",
		"SELECT max(t.1) AS m, sumIf(v, c) AS s FROM (SELECT tuple(voxel_volume, 1) AS t, voxel_volume AS v, parent_enum = 1 AS c FROM neuron) WHERE c",
		"SELECT sum(y.v) AS s FROM neuron AS x JOIN (SELECT cid, voxel_volume AS v FROM neuron WHERE parent_enum = 1) AS y USING cid",
		"WITH voxel_volume * 2 AS v SELECT sum(v) AS s, max(v) AS m FROM neuron WHERE parent_enum = 1",
		"SELECT voxel_volume AS v, sum(v) AS s, count() AS n FROM neuron GROUP BY v",
		"SELECT sum(e) AS s FROM axon ARRAY JOIN [branch_count, branch_count + 1] AS e WHERE branch_count IS NULL",
		"SELECT sum(c) AS s FROM (SELECT coalesce(voxel_volume, 0) AS c FROM neuron WHERE parent_enum > 100)",
		"SELECT sum(voxel_volume) AS s FROM (SELECT coalesce(voxel_volume, 0) AS voxel_volume FROM neuron WHERE parent_enum > 100)",
		"WITH coalesce(voxel_volume, 0) AS c SELECT sum(c) AS s FROM neuron WHERE parent_enum > 100",
	} {
		t.Run(sql, func(t *testing.T) { l.requireOracle(t, sql, false) })
	}
}

// TestLiveConstantGroupKey: a query grouped by keys that ClickHouse folds
// to constants answers as ClickHouse does: with an aggregate, one group
// even of no rows (ClickHouse drops such keys); without one, or beside a
// key that is a column, no group of no rows. A key ClickHouse does not
// fold (arrayJoin, a lambda's, multiIf) groups as a column does.
func TestLiveConstantGroupKey(t *testing.T) {
	t.Parallel()
	l := startLive(t)
	for _, sql := range []string{
		"SELECT 1 AS x, count() AS n FROM neuron WHERE parent_enum > 100 GROUP BY x",
		"SELECT 1 AS x, count() AS n FROM neuron GROUP BY x",
		"SELECT count() AS n FROM neuron WHERE parent_enum > 100 GROUP BY 1, 2",
		"SELECT 'a' AS x, [1, 2] AS y, count() AS n, sum(voxel_volume) AS s, countIf(parent_enum = 1) AS c FROM neuron WHERE parent_enum > 100 GROUP BY x, y",
		"SELECT NULL AS x, nullIf(1, 1) AS y, count() AS n FROM neuron WHERE parent_enum > 100 GROUP BY x, y",
		"SELECT toString(1 + 1) AS x, today() > toDate(0) AS y, count() AS n FROM neuron WHERE parent_enum > 100 GROUP BY x, y HAVING n = 0 ORDER BY x LIMIT 1",
		"SELECT 1 AS x FROM neuron WHERE parent_enum > 100 GROUP BY x HAVING count() = 0",
		"SELECT 1 AS x FROM neuron WHERE parent_enum > 100 GROUP BY x",
		"SELECT 1 AS x, parent_enum, count() AS n FROM neuron WHERE parent_enum > 100 GROUP BY x, parent_enum",
		"SELECT 1 AS x, parent_enum, count() AS n FROM neuron GROUP BY x, parent_enum",
		"SELECT arrayJoin([1, 2]) AS x, arrayMap(y -> y, [1]) AS m, multiIf(1, 2, 3) AS i, count() AS n FROM neuron WHERE parent_enum > 100 GROUP BY x, m, i",
		"SELECT 1 AS x, count() AS n FROM neuron WHERE parent_enum > 100 GROUP BY x UNION ALL SELECT 2 AS x, count() AS n FROM axon GROUP BY x",
	} {
		t.Run(sql, func(t *testing.T) { l.requireOracle(t, sql, false) })
	}
}

// TestLiveWithConstants: a WITH name for a constant read as a select
// item, sort key, LIMIT BY key or group key answers as ClickHouse does.
// Each node sent it as the constant ClickHouse computes it to, and the
// hub's UNION ALL refused the column ("non constant in source stream but
// must be constant in result").
func TestLiveWithConstants(t *testing.T) {
	t.Parallel()
	l := startLive(t)
	for _, tc := range []struct {
		sql     string
		ordered bool
	}{
		{"WITH 5 AS c SELECT c, cid FROM neuron", false},
		{"WITH toString(1) AS c, d + 1 AS e, 2 AS d SELECT c AS x, e, cid FROM neuron", false},
		{"WITH NULL AS z, nullIf(1, 1) AS y SELECT z, y + 1 AS w, cid FROM axon", false},
		{"WITH 5 AS c SELECT DISTINCT c FROM neuron", false},
		{"WITH 5 AS c SELECT cid FROM neuron ORDER BY c, cid LIMIT 2", true},
		{"WITH 5 AS c SELECT cid FROM neuron ORDER BY cid LIMIT 1 BY c", true},
		{"WITH 5 AS c SELECT c, count() AS n FROM neuron GROUP BY c", false},
		{"WITH 5 AS c SELECT c AS x, count() AS n FROM neuron WHERE parent_enum > 100 GROUP BY x", false},
		{"WITH 5 AS c SELECT c, parent_enum, count() AS n FROM neuron GROUP BY c, parent_enum HAVING c > 1", false},
		{"WITH 'x' AS t SELECT neuron_type = t AS x, count() AS n FROM neuron GROUP BY x", false},
	} {
		t.Run(tc.sql, func(t *testing.T) { l.requireOracle(t, tc.sql, tc.ordered) })
	}
}
