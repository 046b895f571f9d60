package arrowconv

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestColumnar(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ch   string
		want bool
	}{
		{"UUID", true}, {"Nullable(UUID)", true}, {"String", true}, {"Nullable(String)", true},
		{"FixedString(4)", true}, {"Enum8('a' = 1)", true}, {"Nullable(Enum16('x' = 1000))", true},
		{"Int8", true}, {"UInt64", true}, {"Nullable(UInt32)", true}, {"Float32", true}, {"Nullable(Float64)", true},
		{"Bool", true}, {"Date", true}, {"Nullable(Date)", true}, {"DateTime", true}, {"DateTime('Europe/Berlin')", true},
		{"Array(String)", true}, {"Array(Nullable(Int32))", true}, {"Array(Array(UInt8))", true},
		{"Date32", false}, {"Decimal(10, 3)", false}, {"Array(Decimal64(2))", false},
		{"LowCardinality(String)", false}, {"LowCardinality(Nullable(String))", false}, {"Array(LowCardinality(String))", false},
		{"DateTime('Nowhere/Atlantis')", false}, {"Int128", false},
	}
	for _, c := range cases {
		t.Run(c.ch, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, c.want, Columnar([]string{c.ch}))
		})
	}
	require.True(t, Columnar([]string{"UUID", "String"}))
	require.False(t, Columnar([]string{"UUID", "Decimal32(2)"}))
}
