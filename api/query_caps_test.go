package api

import (
	"errors"
	"log/slog"
	"net/http"
	"testing"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
)

// TestQueryCapErrors: a query ClickHouse stopped at a result or memory cap
// is a 400 that names the cap, the hub's (its setting) or a node's (its
// lab's gateway user), without the addresses ClickHouse names; the
// settings the API sends carry the hub's caps.
func TestQueryCapErrors(t *testing.T) {
	t.Parallel()
	s := New(config.API{Query: config.Query{MaxRows: 1000, MaxResultBytes: 4096, MaxMemory: 1 << 20, Timeout: 60e9}},
		Deps{Log: slog.New(slog.DiscardHandler)})
	for _, tc := range []struct {
		name      string
		code      int32
		message   string
		wantCode  string
		contains  []string
		forbidden string
	}{
		{"hub result", clickhouse.CodeTooManyRowsOrBytes, "Limit for result exceeded, max bytes: 4.00 KiB, current bytes: 1.36 MiB",
			codeResultTooLarge, []string{"SYNDB_QUERY_MAX_RESULT_BYTES", "4096 bytes", "1000 rows", "current bytes: 1.36 MiB"}, ""},
		{"node result", clickhouse.CodeTooManyRowsOrBytes,
			"Received from 127.0.0.1:9010. DB::Exception: Limit for result exceeded, max rows: 10.00, current rows: 100.00.",
			codeResultTooLarge, []string{"a node's share", "gateway user", "max rows: 10.00"}, "127.0.0.1"},
		{"hub memory", clickhouse.CodeMemoryLimitExceeded, "Memory limit (for query) exceeded: would use 1.5 MiB, maximum: 1.00 MiB",
			codeMemoryLimit, []string{"SYNDB_QUERY_MAX_MEMORY", "1048576 bytes"}, ""},
		{"node memory", clickhouse.CodeMemoryLimitExceeded,
			"Received from 127.0.0.1:9010. DB::Exception: Memory limit (for query) exceeded: would use 1.2 GiB, maximum: 953.67 MiB.",
			codeMemoryLimit, []string{"on a node", "gateway user", "maximum: 953.67 MiB"}, "9010"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.queryError(&chgo.Exception{Code: tc.code, Message: tc.message})
			var ae *apiError
			require.True(t, errors.As(err, &ae), "%v", err)
			require.Equal(t, http.StatusBadRequest, ae.status)
			require.Equal(t, tc.wantCode, ae.code)
			for _, c := range tc.contains {
				require.Contains(t, ae.message, c)
			}
			if tc.forbidden != "" {
				require.NotContains(t, ae.message, tc.forbidden)
			}
		})
	}
	set := s.querySettings(60)
	require.Equal(t, 1<<20, set["max_memory_usage"])
	require.Equal(t, 1000, set["max_result_rows"])
	require.Equal(t, 4096, set["max_result_bytes"])
	for k, v := range set {
		_, isInt := v.(int)
		require.True(t, isInt, "%s: 18.16's native protocol takes numeric settings only", k)
	}
}

// TestQueryFaultErrors: an exception the query's own values or arguments
// caused, on the hub or on a node, is a 400 with ClickHouse's reason and
// neither the servers it came through nor a stack trace; one of the
// warehouse's own is a 502.
func TestQueryFaultErrors(t *testing.T) {
	t.Parallel()
	s := New(config.API{Query: config.Query{MaxRows: 1000, Timeout: 60e9}}, Deps{Log: slog.New(slog.DiscardHandler)})
	for _, tc := range []struct {
		code    int32
		message string
		status  int
		reason  string
	}{
		{376, "Cannot parse uuid x: Cannot parse UUID from String", http.StatusBadRequest, "Cannot parse uuid x"},
		{36, "Received from 127.0.0.1:9010. DB::Exception: Bin count should be positive.", http.StatusBadRequest, "Bin count should be positive"},
		{12, "Quantile level is out of range [0..1]", http.StatusBadRequest, "Quantile level is out of range"},
		{127, "Index for tuple element is out of range.", http.StatusBadRequest, "Index for tuple element"},
		{427, "OptimizedRegularExpression: cannot compile re2: (, error: missing ): (.", http.StatusBadRequest, "cannot compile re2"},
		{48, "Received from 127.0.0.1:9010. DB::Exception: Not implemented. Stack trace:\n\n0. clickhouse-server(StackTrace::StackTrace()+0x16)", http.StatusBadRequest, "Not implemented"},
		{6, "Cannot parse string 'x' as Int32: syntax error at begin of string.", http.StatusBadRequest, "Cannot parse string 'x' as Int32"},
		{49, "Received from 127.0.0.1:9010. DB::Exception: Sizes of keys and values arrays do not match. Stack trace: 0. clickhouse-server", http.StatusBadGateway, "Sizes of keys and values arrays do not match"},
	} {
		err := s.queryError(&chgo.Exception{Code: tc.code, Message: tc.message})
		var ae *apiError
		require.True(t, errors.As(err, &ae), "%v", err)
		require.Equal(t, tc.status, ae.status, tc.message)
		require.Contains(t, ae.message, tc.reason)
		require.NotContains(t, ae.message, "127.0.0.1")
		require.NotContains(t, ae.message, "Stack trace")
		require.NotContains(t, ae.message, "clickhouse-server")
	}
}
