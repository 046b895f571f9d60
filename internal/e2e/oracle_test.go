package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
)

// openCH connects as the default user to database db of the ClickHouse at
// addr, closing the connection when the test ends.
func openCH(t testing.TB, addr, db string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(t.Context(), config.ClickHouse{Addr: addr, User: "default", Database: db})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// dropDatabase drops db on the ClickHouse at addr over a connection of its
// own (a test's cleanup runs after the test's connections are closed).
func dropDatabase(ctx context.Context, addr, db string) error {
	c, err := clickhouse.Open(ctx, config.ClickHouse{Addr: addr, User: "default", Database: "default"})
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	if err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
		return fmt.Errorf("drop database %s: %w", db, err)
	}
	return nil
}

// chRows runs sql on conn and returns its rows, each value as /v1/query's
// JSON answer encodes it (see normalize).
func chRows(t testing.TB, conn driver.Conn, sql string) [][]any {
	t.Helper()
	scanned, err := scanRows(t.Context(), conn, sql)
	require.NoError(t, err, sql)
	return normalizeAll(t, scanned)
}

// scanRows runs sql on conn and returns its rows as pointers to scanned
// values; it fails with an error, not the test, so that it may run on a
// goroutine of its own.
func scanRows(ctx context.Context, conn driver.Conn, sql string) ([][]any, error) {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	defer func() { _ = rows.Close() }()
	types := rows.ColumnTypes()
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(types))
		for i, ct := range types {
			vals[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(vals...); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read rows: %w", err)
	}
	return out, nil
}

// normalizeAll normalizes scanned rows (see normalize).
func normalizeAll(t testing.TB, scanned [][]any) [][]any {
	t.Helper()
	out := make([][]any, len(scanned))
	for i, r := range scanned {
		out[i] = make([]any, len(r))
		for j, v := range r {
			out[i][j] = normalize(t, reflect.ValueOf(v).Elem())
		}
	}
	return out
}

// normalize turns a scanned ClickHouse value into what decoding the API's
// JSON encoding of it gives: Nullable pointers unwrapped, times as UTC
// RFC 3339 strings, NaN and infinities as null, then a JSON round trip
// (numbers become float64, UUIDs strings, arrays []any).
func normalize(t testing.TB, v reflect.Value) any {
	t.Helper()
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	x := v.Interface()
	switch y := x.(type) {
	case time.Time:
		x = y.UTC().Format(time.RFC3339Nano)
	case float64:
		if math.IsNaN(y) || math.IsInf(y, 0) {
			x = nil
		}
	}
	raw, err := json.Marshal(x)
	require.NoError(t, err)
	var out any
	require.NoError(t, json.Unmarshal(raw, &out))
	return out
}

// fedAnswer is a JSON-lines answer of /v1/query with each row's values in
// column order.
type fedAnswer struct {
	status int
	cols   []string
	rows   [][]any
	meta   api.QueryMeta
	err    string
}

// formatBody is the request body of sql routed to nodes, answered in format.
func formatBody(t testing.TB, sql, format string, nodes []string) string {
	t.Helper()
	raw, err := json.Marshal(api.QueryRequest{SQL: sql, Format: format, Nodes: nodes})
	require.NoError(t, err)
	return string(raw)
}

// fedQuery runs sql through /v1/query on nodes as JSON lines.
func fedQuery(t testing.TB, sql string, nodes []string) fedAnswer {
	t.Helper()
	resp := postQuery(t, formatBody(t, sql, "json", nodes), "")
	defer func() { _ = resp.Body.Close() }()
	return readAnswer(t, resp)
}

// readAnswer reads a JSON-lines answer of /v1/query.
func readAnswer(t testing.TB, resp *http.Response) fedAnswer {
	t.Helper()
	out := fedAnswer{status: resp.StatusCode}
	if resp.StatusCode != http.StatusOK {
		var e api.ErrorBody
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
		out.err = e.Error.Message
		return out
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		cols, vals := orderedLine(t, sc.Bytes())
		if len(cols) == 1 && cols[0] == "_meta" {
			raw, err := json.Marshal(vals[0])
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(raw, &out.meta))
			continue
		}
		out.cols = cols
		out.rows = append(out.rows, vals)
	}
	require.NoError(t, sc.Err())
	return out
}

// orderedLine decodes one JSON object, keeping its keys' order.
func orderedLine(t testing.TB, line []byte) ([]string, []any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(line))
	tok, err := dec.Token()
	require.NoError(t, err)
	require.Equal(t, json.Delim('{'), tok, string(line))
	var cols []string
	var vals []any
	for dec.More() {
		key, err := dec.Token()
		require.NoError(t, err)
		var v any
		require.NoError(t, dec.Decode(&v))
		cols = append(cols, key.(string))
		vals = append(vals, v)
	}
	return cols, vals
}

// match says how rows are compared.
type match struct {
	// ordered compares rows in order (per node, for the per-node oracle).
	ordered bool
	// tol is the relative tolerance of floats (0: 1e-9); colTol overrides
	// it for some columns (by position).
	tol    float64
	colTol map[int]float64
	// sets are columns (by position) holding arrays compared as sets.
	sets []int
}

func (m match) valueEqual(col int, a, b any) bool {
	tol := m.tol
	if tol == 0 {
		tol = 1e-9
	}
	if ct, ok := m.colTol[col]; ok {
		tol = ct
	}
	fa, okA := a.(float64)
	fb, okB := b.(float64)
	if okA && okB {
		return fa == fb || math.Abs(fa-fb) <= tol*math.Max(math.Abs(fa), math.Abs(fb))
	}
	if slices.Contains(m.sets, col) {
		return sameSet(a, b)
	}
	return reflect.DeepEqual(a, b)
}

func sameSet(a, b any) bool {
	xa, okA := a.([]any)
	xb, okB := b.([]any)
	if !okA || !okB || len(xa) != len(xb) {
		return false
	}
	key := func(xs []any) []string {
		out := make([]string, len(xs))
		for i, x := range xs {
			out[i] = fmt.Sprint(x)
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(xa), key(xb))
}

func (m match) rowEqual(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !m.valueEqual(i, a[i], b[i]) {
			return false
		}
	}
	return true
}

// requireRows asserts that got holds want's rows: in order when
// m.ordered, else as a multiset.
func requireRows(t testing.TB, m match, want, got [][]any, msg string) {
	t.Helper()
	require.Len(t, got, len(want), "%s\nwant %v\ngot  %v", msg, want, got)
	if m.ordered {
		for i := range want {
			require.True(t, m.rowEqual(want[i], got[i]), "%s: row %d\nwant %v\ngot  %v", msg, i, want[i], got[i])
		}
		return
	}
	used := make([]bool, len(got))
	for _, w := range want {
		found := false
		for j, g := range got {
			if !used[j] && m.rowEqual(w, g) {
				used[j], found = true, true
				break
			}
		}
		require.True(t, found, "%s: no answer row matches %v\nwant %v\ngot  %v", msg, w, want, got)
	}
}

// byNode splits rows whose first column is the node's name.
func byNode(t testing.TB, rows [][]any) map[string][][]any {
	t.Helper()
	out := map[string][][]any{}
	for _, r := range rows {
		require.NotEmpty(t, r)
		node, ok := r[0].(string)
		require.True(t, ok, "first column is _node: %v", r)
		out[node] = append(out[node], r)
	}
	return out
}

// tagged prefixes each row with node.
func tagged(node string, rows [][]any) [][]any {
	out := make([][]any, len(rows))
	for i, r := range rows {
		out[i] = append([]any{node}, r...)
	}
	return out
}
