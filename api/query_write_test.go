package api

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/devstack"
)

// TestArrayOfUInt8IsNumbers: an Array(UInt8) value (a []uint8 to the
// driver) is written as ClickHouse writes it, an array of numbers, in JSON
// and in CSV, nested or not, and Nullable pointers still unwrap.
func TestArrayOfUInt8IsNumbers(t *testing.T) {
	t.Parallel()
	one := uint8(7)
	for _, tc := range []struct {
		v    any
		want string
	}{
		{[]uint8{1, 2, 255}, "[1,2,255]"},
		{[]uint8{}, "[]"},
		{[][]uint8{{1}, {}, {2, 3}}, "[[1],[],[2,3]]"},
		{[]*uint8{&one, nil}, "[7,null]"},
		{[]uint16{1}, "[1]"},
		{&one, "7"},
	} {
		v := deref(reflect.ValueOf(&tc.v).Elem().Elem())
		var b bytes.Buffer
		require.NoError(t, writeJSONValue(&b, v))
		require.Equal(t, tc.want, b.String(), "%#v", tc.v)
		require.Equal(t, tc.want, csvValue(v), "%#v", tc.v)
	}
	var none *uint8
	require.Nil(t, deref(reflect.ValueOf(&none).Elem()))
}

// TestCSVNullIsClickHousesNull: in CSV, NULL is \N and a string is quoted,
// as ClickHouse's own FORMAT CSV writes them, so NULL, the empty string and
// the string \N are three different fields. The oracle is the same
// server's FORMAT CSV answer to the same query.
func TestCSVNullIsClickHousesNull(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts ClickHouse")
	}
	require.NoError(t, devstack.EnsurePackages(t.Context(), slog.New(slog.DiscardHandler),
		[]devstack.Package{{Binary: "/usr/sbin/clickhouse-server", Name: "clickhouse-server"}}))
	httpPort, err := devstack.FreePort()
	require.NoError(t, err)
	tcpPort, err := devstack.FreePort()
	require.NoError(t, err)
	dir := t.TempDir()
	ch := &devstack.ClickHouse{Name: "api-csv", Dir: dir, HTTPPort: httpPort, TCPPort: tcpPort, LogFile: filepath.Join(dir, "server.log")}
	t.Cleanup(func() { _ = ch.Stop(context.Background()) })
	require.NoError(t, ch.Start(t.Context()))
	conn, err := clickhouse.Dial(t.Context(), config.ClickHouse{Addr: ch.Addr(), User: "default", Database: "syndb"}, clickhouse.DefaultPool)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })

	const sql = `SELECT NULL AS a, '' AS b, '\\N' AS c, 'x,"y' AS d, 1.5 AS e, toNullable('') AS f, ` +
		`CAST(NULL AS Nullable(String)) AS g, if(number = 0, NULL, number) AS h, ' lead' AS i, -3 AS j, ` +
		`if(number = 0, 'N', NULL) AS k, 'two\nlines' AS l FROM system.numbers LIMIT 2`
	rows, err := conn.Query(t.Context(), sql)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	n, err := writeCSV(echo.NewResponse(rec, echo.New()), rows)
	require.NoError(t, err)
	require.NoError(t, rows.Close())
	require.EqualValues(t, 2, n)
	header, body, ok := strings.Cut(rec.Body.String(), "\n")
	require.True(t, ok, rec.Body.String())
	require.Equal(t, "a,b,c,d,e,f,g,h,i,j,k,l", header)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, fmt.Sprintf("http://%s:%d/", "127.0.0.1", httpPort),
		strings.NewReader(sql+" FORMAT CSV"))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	want, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(want))
	require.Equal(t, string(want), body)

	recs, err := csv.NewReader(strings.NewReader(rec.Body.String())).ReadAll()
	require.NoError(t, err, "it is CSV")
	require.Len(t, recs, 3)
	require.Len(t, recs[1], 12)
}
