package benchtable

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const sample = `commit: abc1234
date: 2026-12-02
cores: 2
goos: linux
pkg: github.com/syndb/federation/internal/e2e
cpu: AMD EPYC
BenchmarkSchemaSyncFanout/nodes=100-2   	       1	 5000000000 ns/op	         3.000 direct-s	         5.000 sync-s
    bench_test.go:12: a log line between results
BenchmarkSchemaSyncFanout/nodes=100-2   	       1	 5000000000 ns/op	         1.000 direct-s	         2.000 sync-s
BenchmarkSchemaSyncFanout/nodes=100-2   	       1	 5000000000 ns/op	         2.000 direct-s	         3.000 sync-s
BenchmarkFlightDoGet/flight-blocks-2    	       1	 1420000000 ns/op	   7000000 rows/s	       380.0 MB/s
BenchmarkFlightDoGet/native-http-2      	       1	 1060000000 ns/op	   9400000 rows/s
PASS
ok  	github.com/syndb/federation/internal/e2e	100.0s
`

func TestParseTakesTheMedianOfEachFigure(t *testing.T) {
	t.Parallel()
	r, err := Parse(strings.NewReader(sample), "sample")
	require.NoError(t, err)
	v, ok := r.Value(Figure{"SchemaSyncFanout/nodes=100", "sync-s"})
	require.True(t, ok)
	require.InDelta(t, 3.0, v, 1e-9) // median of 5, 2, 3
	v, ok = r.Value(Figure{"FlightDoGet/flight-blocks", "MB/s"})
	require.True(t, ok)
	require.InDelta(t, 380.0, v, 1e-9, "the unit as written, not tidied")
	_, ok = r.Value(Figure{"FlightDoGet/flight-libp2p", "rows/s"})
	require.False(t, ok)
	require.Equal(t, "abc1234", r.Config["commit"])
	require.Equal(t, "2", r.Config["cores"])
}

func TestTable(t *testing.T) {
	t.Parallel()
	r, err := Parse(strings.NewReader(sample), "sample")
	require.NoError(t, err)
	f := func(b, u string) *Figure { return &Figure{b, u} }
	rows := []Row{
		{Label: "sync", Value: Figure{"SchemaSyncFanout/nodes=100", "sync-s"}, Base: f("SchemaSyncFanout/nodes=100", "direct-s"),
			BaseLabel: "direct", Goal: Goal{MaxRatio: 2}},
		{Label: "doget", Value: Figure{"FlightDoGet/flight-blocks", "rows/s"}, Base: f("FlightDoGet/native-http", "rows/s"),
			BaseLabel: "native", Goal: Goal{MinRatio: 0.8}},
		{Label: "absent", Value: Figure{"Nothing", "x"}},
		{Label: "absent base", Value: Figure{"FlightDoGet/native-http", "rows/s"}, Base: f("Nothing", "x"), BaseLabel: "none"},
	}
	var b strings.Builder
	require.NoError(t, Table(&b, r, rows))
	got := b.String()
	require.Contains(t, got, "Run of 2026-12-02 at commit abc1234 on 2 cores (AMD EPYC).")
	// 3 s against 2 s: 1.5×, within 2×.
	require.Contains(t, got, "| sync | 3 sync-s | direct | 2 direct-s | 1.50× | ≤ 2× | yes |")
	// 7.0 M against 9.4 M rows/s: 74 %, short of 80 %.
	require.Contains(t, got, "| doget | 7.0 M rows/s | native | 9.4 M rows/s | 74 % | ≥ 80 % | no |")
	require.Contains(t, got, "| absent | not run |")
	require.Contains(t, got, "| absent base | 9.4 M rows/s | none | not run |")
}

func TestFormat(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		v    float64
		unit string
		want string
	}{
		{1.4237, "sync-s", "1.42 sync-s"},
		{2010.4, "sweep-ms", "2010 sweep-ms"},
		{0.0123, "x", "0.0123 x"},
		{23898, "req/s", "23.9 k req/s"},
		{82_000_000, "reads/s", "82.0 M reads/s"},
		{535, "p99-µs", "535 p99-µs"},
	} {
		require.Equal(t, c.want, Format(c.v, c.unit))
	}
}

func TestRewrite(t *testing.T) {
	t.Parallel()
	doc := []byte("# Title\n\n## Benchmarks\n\n" + BeginMarker + "\nold table\n" + EndMarker + "\n\n## Next\n")
	out, err := Rewrite(doc, "| new | table |\n")
	require.NoError(t, err)
	require.Equal(t, "# Title\n\n## Benchmarks\n\n"+BeginMarker+"\n| new | table |\n"+EndMarker+"\n\n## Next\n", string(out))
	_, err = Rewrite([]byte("no markers"), "x")
	require.ErrorIs(t, err, ErrNoSection)
}
