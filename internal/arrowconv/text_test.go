package arrowconv

import (
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestTextColumn(t *testing.T) {
	t.Parallel()
	id := uuid.MustParse("8f0ec595-47d4-5cb0-a6d4-cee4d8efb6e8")
	f := 2.5
	for _, tc := range []struct {
		typ, in string
		want    any
		err     string
	}{
		{"UUID", id.String(), id, ""},
		{"UUID", "nope", nil, "not a UUID"},
		{"UUID", "", nil, "required"},
		{"Nullable(UUID)", "", (*uuid.UUID)(nil), ""},
		{"Nullable(Float64)", "2.5", &f, ""},
		{"Nullable(Float64)", "x", nil, "not a number"},
		{"UInt8", "300", nil, "not a UInt8"},
		{"UInt32", "7", uint32(7), ""},
		{"String", "", "", ""},
		{"DateTime", "2026-01-02 03:04:05", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), ""},
		{"Array(String)", `["a","b"]`, []string{"a", "b"}, ""},
		{"Array(String)", `nope`, nil, "JSON array"},
	} {
		c, err := NewTextColumn(tc.typ)
		require.NoError(t, err)
		got, err := c.Parse(tc.in)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, "%s %q", tc.typ, tc.in)
			continue
		}
		require.NoError(t, err, "%s %q", tc.typ, tc.in)
		require.Equal(t, tc.want, got, "%s %q", tc.typ, tc.in)
		b := array.NewBuilder(memory.DefaultAllocator, c.ArrowType())
		c.Append(b, got)
		arr := b.NewArray()
		require.Equal(t, 1, arr.Len())
		arr.Release()
		b.Release()
	}
}
