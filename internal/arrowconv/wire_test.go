package arrowconv

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// wireBlock is the wire bytes of a String, a UInt64 and a UUID column of
// rows values, as ch-go encodes them, and the values.
func wireBlock(rows int, seed uint64) ([]byte, proto.ColStr, proto.ColUInt64, proto.ColUUID) {
	rng := rand.New(rand.NewPCG(seed, 1))
	var s proto.ColStr
	var n proto.ColUInt64
	var ids proto.ColUUID
	for i := range rows {
		size := rng.IntN(300)
		switch i % 97 {
		case 5:
			size = 0
		case 11:
			size = 5000 // longer than any read buffer below
		}
		v := make([]byte, size)
		for j := range v {
			v[j] = byte('a' + rng.IntN(26))
		}
		s.AppendBytes(v)
		n.Append(rng.Uint64())
		ids.Append(uuid.New())
	}
	var b proto.Buffer
	s.EncodeColumn(&b)
	n.EncodeColumn(&b)
	ids.EncodeColumn(&b)
	return b.Buf, s, n, ids
}

// decodeWire decodes the three columns of wireBlock from data with wire
// columns, reading through src when it is set.
func decodeWire(t *testing.T, data []byte, rows int, buffered func([]byte) *bufio.Reader) (str, num, id arrow.Array) {
	t.Helper()
	var r *proto.Reader
	w := &wire{mem: memory.NewCheckedAllocator(memory.DefaultAllocator)}
	if buffered != nil {
		w.src = buffered(data)
		r = proto.NewReader(w.src)
	} else {
		r = proto.NewReader(bytes.NewReader(data))
	}
	cols := []column{
		wireStrings(w),
		wireValues[uint64, *array.Uint64Builder](w, proto.ColumnTypeUInt64, false),
		wireValues[uuid.UUID, *extensions.UUIDBuilder](w, proto.ColumnTypeUUID, true),
	}
	types := []arrow.DataType{arrow.BinaryTypes.String, arrow.PrimitiveTypes.Uint64, &arrow.FixedSizeBinaryType{ByteWidth: 16}}
	var out []arrow.Array
	for i, c := range cols {
		require.NoError(t, c.res.DecodeColumn(r, rows))
		require.Equal(t, rows, c.res.Rows())
		out = append(out, array.MakeFromData(c.direct(nil, types[i], nil)))
	}
	t.Cleanup(func() {
		for _, a := range out {
			a.Release()
		}
	})
	return out[0], out[1], out[2]
}

func TestWireColumnsMatchChGo(t *testing.T) {
	t.Parallel()
	const rows = 2000
	data, wantS, wantN, wantIDs := wireBlock(rows, 7)
	readers := map[string]func([]byte) *bufio.Reader{
		"proto-reader": nil,
		"bufio-16":     func(b []byte) *bufio.Reader { return bufio.NewReaderSize(bytes.NewReader(b), 16) },
		"bufio-one-byte-reads": func(b []byte) *bufio.Reader {
			return bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(b)), 64)
		},
		"bufio-256k": func(b []byte) *bufio.Reader { return bufio.NewReaderSize(bytes.NewReader(b), 256<<10) },
	}
	for name, buffered := range readers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, n, ids := decodeWire(t, data, rows, buffered)
			for i := range rows {
				require.Equal(t, string(wantS.RowBytes(i)), s.(*array.String).Value(i), "row %d", i)
				require.Equal(t, wantN.Row(i), n.(*array.Uint64).Value(i), "row %d", i)
				want := wantIDs.Row(i)
				require.Equal(t, want[:], ids.(*array.FixedSizeBinary).Value(i), "row %d", i)
			}
		})
	}
}

func TestWireColumnsRefuseBadInput(t *testing.T) {
	t.Parallel()
	data, _, _, _ := wireBlock(100, 3)
	cases := map[string][]byte{
		"truncated": data[:len(data)/3],
		"huge length": func() []byte {
			var b proto.Buffer
			b.PutUVarInt(maxWireString + 1)
			return b.Buf
		}(),
		"overflowing length": bytes.Repeat([]byte{0xff}, 11),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, buffered := range []bool{false, true} {
				w := &wire{mem: memory.DefaultAllocator}
				src := bytes.NewReader(data)
				r := proto.NewReader(src)
				if buffered {
					w.src = bufio.NewReaderSize(src, 32)
					r = proto.NewReader(w.src)
				}
				err := wireStrings(w).res.DecodeColumn(r, 100)
				require.Error(t, err)
			}
		})
	}
}

func TestReuseKeepsAccountsStraight(t *testing.T) {
	t.Parallel()
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	p := newReuse(mem)
	var bufs []*memory.Buffer
	for i := range 40 {
		b := memory.NewResizableBuffer(p)
		b.Resize(1000 + i*100)
		copy(b.Bytes(), strings.Repeat("x", b.Len()))
		b.Reserve(4000 + i*100) // reallocates within the allocator
		bufs = append(bufs, b)
	}
	for _, b := range bufs {
		b.Release()
	}
	again := memory.NewResizableBuffer(p)
	again.Resize(2000)
	require.Equal(t, 2000, again.Len())
	p.close()
	again.Release() // after close: straight back to mem
	mem.AssertSize(t, 0)
}

func TestArrayOffsetsRefused(t *testing.T) {
	t.Parallel()
	cases := map[string][]uint64{
		"falling":            {3, 2},
		"past 2^31-1":        {1 << 40},
		"wrapping the bytes": {1<<61 + 2},
		"negative as int":    {1 << 63},
	}
	for name, offsets := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			typ, err := parseType("Array(UInt64)")
			require.NoError(t, err)
			c, ok := blockColumn(typ, &wire{mem: memory.DefaultAllocator})
			require.True(t, ok)
			var b proto.Buffer
			proto.ColUInt64(offsets).EncodeColumn(&b)
			b.Buf = append(b.Buf, make([]byte, 64)...) // some elements' bytes
			err = c.res.DecodeColumn(proto.NewReader(bytes.NewReader(b.Buf)), len(offsets))
			require.ErrorContains(t, err, "out of order or past 2^31-1")
		})
	}
}

func TestStringReserveFollowsTheLastBlock(t *testing.T) {
	t.Parallel()
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	w := &wire{mem: mem}
	c := wireStrings(w)
	col := c.res.(*wireCol)
	decode := func(vals ...string) arrow.Array {
		var s proto.ColStr
		for _, v := range vals {
			s.Append(v)
		}
		var b proto.Buffer
		s.EncodeColumn(&b)
		require.NoError(t, col.DecodeColumn(proto.NewReader(bytes.NewReader(b.Buf)), len(vals)))
		return array.MakeFromData(c.direct(mem, arrow.BinaryTypes.String, nil))
	}
	long := decode(strings.Repeat("x", 10_000))
	require.Equal(t, 10_000, long.(*array.String).ValueLen(0))
	long.Release()
	short := make([]string, 10_000)
	for i := range short {
		short[i] = string(rune('a' + i%26))
	}
	got := decode(short...)
	defer got.Release()
	for i, want := range short {
		require.Equal(t, want, got.(*array.String).Value(i))
	}
	// By the first block's average the second would reserve 100 MB.
	require.Less(t, got.Data().Buffers()[2].Cap(), 1<<20)
}

// panicky is a Blocks whose first block panics its decoder.
type panicky struct{}

func (panicky) Next(proto.Result) int { panic("a decoder met bytes it cannot take") }
func (panicky) Err() error            { return nil }
func (panicky) Close() error          { return nil }

func TestBlockReaderTurnsADecoderPanicIntoItsError(t *testing.T) {
	t.Parallel()
	r, err := NewBlockReader(panicky{}, []string{"s"}, []string{"String"}, 1024, memory.DefaultAllocator)
	require.NoError(t, err)
	defer r.Release()
	require.False(t, r.Next())
	require.ErrorContains(t, r.Err(), "a decoder met bytes it cannot take")
}
