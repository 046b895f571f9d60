package api

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
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
