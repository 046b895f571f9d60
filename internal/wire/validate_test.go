package wire

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRegisterRequestClickHouseDatabase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, db string
		ok       bool
	}{
		{"empty: an older agent", "", true},
		{"default", "syndb", true},
		{"underscores and digits", "syndb_lab_c2", true},
		{"leading underscore", "_scratch", true},
		{"mixed case", "SynDB_C", true},
		{"64 characters", "d" + strings.Repeat("x", 63), true},
		{"65 characters", "d" + strings.Repeat("x", 64), false},
		{"leading digit", "1syndb", false},
		{"dash", "syndb-c", false},
		{"dot: another database's table", "syndb.neuron", false},
		{"quote", "syndb', 'neuron", false},
		{"backtick", "`syndb`", false},
		{"space", "syndb c", false},
		{"statement", "syndb; DROP DATABASE syndb", false},
		{"newline", "syndb\n", false},
		{"non-ASCII letter", "syndbé", false},
		{"NUL", "syndb\x00", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := &RegisterRequest{Name: "lab-c", ClickhouseAddr: "127.0.0.1:9000", ClickhouseDatabase: tc.db}
			err := req.Validate()
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, "clickhouse_database")
			require.ErrorContains(t, err, "must be 1-64 characters of A-Z, a-z, 0-9 and '_', not starting with a digit")
		})
	}
}

// TestRegisterRequestFlightCert: the Flight certificate pin is absent (a
// plaintext listener) or exactly a SHA-256.
func TestRegisterRequestFlightCert(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		pin  []byte
		ok   bool
	}{
		{"none: plaintext", nil, true},
		{"a SHA-256", make([]byte, 32), true},
		{"short", make([]byte, 31), false},
		{"long", make([]byte, 33), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := &RegisterRequest{Name: "lab-c", FlightCertSha256: tc.pin}
			err := req.Validate()
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, "flight_cert_sha256 is")
			require.ErrorContains(t, err, "not a SHA-256 (32 bytes)")
		})
	}
}
