package arrowconv

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// directFn builds the Arrow data of a whole decoded column from its bytes,
// with no per-value work: each value valid unless valid is non-nil and
// says otherwise. It returns nil when it cannot (the caller appends to a
// builder instead).
type directFn func(mem memory.Allocator, dt arrow.DataType, valid []bool) arrow.ArrayData

// bitmap returns the validity bitmap of valid and its null count; nil and 0
// when every value is valid.
func bitmap(mem memory.Allocator, valid []bool) (*memory.Buffer, int) {
	nulls := 0
	for _, v := range valid {
		if !v {
			nulls++
		}
	}
	if nulls == 0 {
		return nil, 0
	}
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(int(bitutil.BytesForBits(int64(len(valid)))))
	bits := buf.Bytes()
	clear(bits)
	for i, v := range valid {
		if v {
			bitutil.SetBit(bits, i)
		}
	}
	return buf, nulls
}

// arrowData wraps bufs as n values of dt with nulls NULLs; it takes over
// the validity bitmap bufs[0].
func arrowData(dt arrow.DataType, n int, bufs []*memory.Buffer, nulls int) arrow.ArrayData {
	d := array.NewData(dt, n, bufs, nil, nulls, 0)
	if bufs[0] != nil {
		bufs[0].Release()
	}
	return d
}
