package clickhouse

import (
	"errors"
	"fmt"
	"testing"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"
)

// TestExceptionClasses: each class holds the codes ClickHouse documents for
// it (src/Common/ErrorCodes.cpp), wrapped or not, and nothing else.
func TestExceptionClasses(t *testing.T) {
	t.Parallel()
	ex := func(code int32) error { return fmt.Errorf("query: %w", &ch.Exception{Code: code, Name: "x"}) }
	for _, tc := range []struct {
		name                         string
		err                          error
		network, queryFault, missing bool
	}{
		{"UNKNOWN_TABLE", ex(60), false, false, true},
		{"UNKNOWN_DATABASE", ex(81), false, false, true},
		{"NO_SUCH_COLUMN_IN_TABLE", ex(16), false, false, true},
		{"UNKNOWN_IDENTIFIER", ex(47), false, true, true},
		{"SYNTAX_ERROR", ex(62), false, true, false},
		{"MEMORY_LIMIT_EXCEEDED", ex(241), false, true, false},
		{"ALL_CONNECTION_TRIES_FAILED", ex(279), true, false, false},
		{"NETWORK_ERROR", ex(210), true, false, false},
		{"TIMEOUT_EXCEEDED", ex(159), true, false, false},
		{"TOO_MANY_SIMULTANEOUS_QUERIES", ex(202), false, false, false},
		{"not an exception", errors.New("boom"), false, false, false},
		{"nil", nil, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.network, IsNetwork(tc.err), "IsNetwork")
			require.Equal(t, tc.queryFault, IsQueryFault(tc.err), "IsQueryFault")
			require.Equal(t, tc.missing, IsMissing(tc.err), "IsMissing")
		})
	}
}
