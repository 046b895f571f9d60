package migrate

import (
	"errors"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

func TestStatements(t *testing.T) {
	t.Parallel()
	sql := `-- a comment
CREATE TABLE a (
    x UInt8
) ENGINE = Memory;

-- another
ALTER TABLE a ADD COLUMN y UInt8;
ALTER TABLE a DROP COLUMN y`
	got := Statements(sql)
	require.Len(t, got, 3)
	require.Contains(t, got[0], "CREATE TABLE a")
	require.NotContains(t, got[0], ";")
	require.Equal(t, "ALTER TABLE a ADD COLUMN y UInt8", got[1])
	require.Equal(t, "ALTER TABLE a DROP COLUMN y", got[2])
}

func TestLoad(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		files fstest.MapFS
		err   string
		n     int
	}{
		{"ok", fstest.MapFS{"0001_a.sql": {Data: []byte("x")}, "0002_b.sql": {Data: []byte("y")}}, "", 2},
		{"gap", fstest.MapFS{"0001_a.sql": {Data: []byte("x")}, "0003_c.sql": {Data: []byte("y")}}, "without gaps", 0},
		{"bad name", fstest.MapFS{"1_a.sql": {Data: []byte("x")}}, "NNNN_name.sql", 0},
		{"starts at 2", fstest.MapFS{"0002_a.sql": {Data: []byte("x")}}, "without gaps", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			migs, err := Load(tc.files, ".")
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Len(t, migs, tc.n)
			require.Equal(t, 1, migs[0].Version)
			require.Equal(t, "a", migs[0].Name)
			require.Len(t, migs[0].Checksum, 64)
		})
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	migs := []Migration{New(1, "a", "x"), New(2, "b", "y")}
	require.NoError(t, Verify(migs))
	tampered := []Migration{migs[0], migs[1]}
	tampered[1].SQL = "DROP TABLE everything"
	require.ErrorContains(t, Verify(tampered), "checksum")
	require.ErrorContains(t, Verify([]Migration{migs[1]}), "out of order")
}

func TestCheckDrift(t *testing.T) {
	t.Parallel()
	migs := []Migration{New(1, "a", "x"), New(2, "b", "y")}
	applied := func(vs ...Migration) []Applied {
		out := make([]Applied, 0, len(vs))
		for _, m := range vs {
			out = append(out, Applied{Version: m.Version, Name: m.Name, Checksum: m.Checksum})
		}
		return out
	}
	cases := []struct {
		name    string
		ledger  []Applied
		version int
	}{
		{"empty", nil, 0},
		{"prefix", applied(migs[0]), 0},
		{"all", applied(migs...), 0},
		{"changed", applied(migs[0], New(2, "b", "changed")), 2},
		{"unknown", applied(migs[0], migs[1], New(3, "c", "z")), 3},
		{"gap", applied(migs[1]), 2},
		{"duplicate", applied(migs[0], migs[0]), 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := CheckDrift(tc.ledger, migs)
			if tc.version == 0 {
				require.NoError(t, err)
				return
			}
			require.True(t, errors.Is(err, ErrDrift), "got %v", err)
			var de *DriftError
			require.ErrorAs(t, err, &de)
			require.Equal(t, tc.version, de.Version)
		})
	}
}

func TestGuards(t *testing.T) {
	t.Parallel()
	m := addColumnRe.FindStringSubmatch("ALTER TABLE mitochondria ADD COLUMN cristae_count Nullable(UInt32)")
	require.Equal(t, []string{"mitochondria", "cristae_count"}, m[1:])
	m = dropColumnRe.FindStringSubmatch("alter table t drop column c")
	require.Equal(t, []string{"t", "c"}, m[1:])
	require.Nil(t, addColumnRe.FindStringSubmatch("ALTER TABLE t MODIFY COLUMN c String"))
}

func TestParseDrift(t *testing.T) {
	t.Parallel()
	orig := &DriftError{Version: 3, Reason: "checksum abc in ledger, def in migration compartments"}
	got, ok := ParseDrift("remote drift: " + orig.Error())
	require.True(t, ok)
	require.Equal(t, orig, got)
	_, ok = ParseDrift("remote unavailable: connection refused")
	require.False(t, ok)
}

func TestColumnVersions(t *testing.T) {
	t.Parallel()
	migs := []Migration{
		New(1, "a", "CREATE TABLE IF NOT EXISTS t (\n  id UUID,\n  v Nullable(Decimal(10, 2)),\n  tags Array(String)\n) ENGINE = MergeTree() ORDER BY id;\n"),
		New(2, "b", "ALTER TABLE t ADD COLUMN extra Nullable(UInt32);\nCREATE TABLE IF NOT EXISTS u (x String) ENGINE = Log;\n"),
		New(3, "c", "ALTER TABLE t DROP COLUMN tags;\n"),
	}
	cv := ColumnVersions(migs)
	require.Equal(t, map[string]map[string]int{
		"t": {"id": 1, "v": 1, "extra": 2},
		"u": {"x": 2},
	}, cv)
	require.Equal(t, "t, u", TableNames(cv))
	require.Equal(t, map[string]map[string]string{
		"t": {"id": "UUID", "v": "Nullable(Decimal(10, 2))", "extra": "Nullable(UInt32)"},
		"u": {"x": "String"},
	}, ColumnTypes(migs))
}
