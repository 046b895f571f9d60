package arrowconv

import (
	"math"
	"unsafe"

	"github.com/ClickHouse/ch-go/proto"
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

// bufferOf returns a buffer from mem holding a copy of b.
func bufferOf(mem memory.Allocator, b []byte) *memory.Buffer {
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(len(b))
	copy(buf.Bytes(), b)
	return buf
}

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

// fixedDirect is the directFn of a column of fixed-width values whose
// bytes are Arrow's (little-endian numbers; UUIDs in RFC 4122 order).
func fixedDirect[T any](vals func() []T) directFn {
	return func(mem memory.Allocator, dt arrow.DataType, valid []bool) arrow.ArrayData {
		v := vals()
		var raw []byte
		if len(v) > 0 {
			raw = unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*int(unsafe.Sizeof(v[0])))
		}
		nullBits, nulls := bitmap(mem, valid)
		data := bufferOf(mem, raw)
		out := arrowData(dt, len(v), []*memory.Buffer{nullBits, data}, nulls)
		data.Release()
		return out
	}
}

// stringDirect is the directFn of a String column: ch-go keeps a block's
// strings end to end in one buffer, which is Arrow's data buffer.
func stringDirect(c *proto.ColStr) directFn {
	return func(mem memory.Allocator, dt arrow.DataType, valid []bool) arrow.ArrayData {
		if len(c.Buf) > math.MaxInt32 {
			return nil
		}
		n := len(c.Pos)
		offsets := memory.NewResizableBuffer(mem)
		offsets.Resize((n + 1) * arrow.Int32SizeBytes)
		offs := arrow.Int32Traits.CastFromBytes(offsets.Bytes())
		end := 0
		for i, p := range c.Pos {
			if p.Start != end {
				offsets.Release()
				return nil // not end to end
			}
			offs[i] = int32(p.Start)
			end = p.End
		}
		offs[n] = int32(end)
		nullBits, nulls := bitmap(mem, valid)
		data := bufferOf(mem, c.Buf[:end])
		out := arrowData(dt, n, []*memory.Buffer{nullBits, offsets, data}, nulls)
		offsets.Release()
		data.Release()
		return out
	}
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
