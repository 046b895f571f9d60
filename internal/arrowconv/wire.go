package arrowconv

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"unsafe"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Wired is a Blocks whose blocks are decoded from one buffered connection
// and nothing else buffered in between (chnative.Rows), so a column's
// decoder may read its bytes from Wire directly instead of through ch-go's
// reader, and parse a String column in place.
type Wired interface {
	Wire() *bufio.Reader
}

// maxWireString bounds one String value, so a corrupt length cannot make
// the reader allocate without limit.
const maxWireString = 1 << 30

// errStringsTooLarge is the error of a block whose strings do not fit
// Arrow's 32-bit String offsets.
var errStringsTooLarge = errors.New("a block's strings exceed 2 GiB")

// wire is what the columns of one BlockReader decode with: the source's
// buffered connection (nil when it has none) and the allocator their
// buffers come from.
type wire struct {
	src *bufio.Reader
	mem memory.Allocator
}

// wireCol decodes one column of native blocks straight into Arrow buffers:
// fixed-width values as the wire has them (little-endian, Arrow's layout),
// UUIDs turned into RFC 4122 byte order, Strings into Arrow's offsets and
// bytes. take hands the buffers to an Arrow array; the next block then
// decodes into new ones (reused from the reader's allocator).
type wireCol struct {
	typ   proto.ColumnType
	width int  // bytes a value; 0 for String
	uuid  bool // swap each UUID's halves into RFC 4122 order
	wire  *wire
	rows  int
	vals  *memory.Buffer // the values; a String column's bytes
	offs  *memory.Buffer // a String column's rows+1 offsets
	avg   int            // a String's bytes in the last block, to size the next
	last  int            // the String bytes of the last block
}

var _ proto.ColResult = (*wireCol)(nil)

func (c *wireCol) Type() proto.ColumnType { return c.typ }
func (c *wireCol) Rows() int              { return c.rows }
func (c *wireCol) Reset()                 { c.rows = 0 }

// DecodeColumn reads rows values.
func (c *wireCol) DecodeColumn(r *proto.Reader, rows int) error {
	c.rows = 0
	if rows < 0 || rows > math.MaxInt32 {
		return fmt.Errorf("a column of %d values is past 2^31-1", rows)
	}
	if c.width > 0 {
		buf := c.buffer(&c.vals, rows*c.width)
		if err := c.readFull(r, buf); err != nil {
			return fmt.Errorf("read %d values: %w", rows, err)
		}
		if c.uuid {
			// The wire has a UUID as two little-endian 64-bit halves.
			for i := 0; i+8 <= len(buf); i += 8 {
				binary.BigEndian.PutUint64(buf[i:], binary.LittleEndian.Uint64(buf[i:]))
			}
		}
		c.rows = rows
		return nil
	}
	if err := c.decodeStrings(r, rows); err != nil {
		return err
	}
	c.rows = rows
	return nil
}

// buffer returns *b's bytes, size long, making *b first if need be.
func (c *wireCol) buffer(b **memory.Buffer, size int) []byte {
	if *b == nil {
		*b = memory.NewResizableBuffer(c.wire.mem)
	}
	(*b).ResizeNoShrink(size)
	return (*b).Bytes()
}

func (c *wireCol) readFull(r *proto.Reader, buf []byte) error {
	if c.wire.src != nil {
		_, err := io.ReadFull(c.wire.src, buf)
		return err
	}
	return r.ReadFull(buf)
}

// decodeStrings reads rows Strings, each a uvarint length and its bytes.
// From a buffered connection it parses every String that is whole in the
// buffer in place, and reads only a String that is not byte by byte.
func (c *wireCol) decodeStrings(r *proto.Reader, rows int) error {
	offs := arrow.Int32Traits.CastFromBytes(c.buffer(&c.offs, (rows+1)*arrow.Int32SizeBytes))
	s := stringSink{b: c.vals}
	if s.b == nil {
		s.b = memory.NewResizableBuffer(c.wire.mem)
		c.vals = s.b
	}
	s.start(c.reserve(rows))
	offs[0] = 0
	for i := 0; i < rows; {
		if src := c.wire.src; src != nil {
			win, _ := src.Peek(src.Buffered())
			var p int
			var err error
			p, i, err = s.parse(win, offs, i, rows)
			if err != nil {
				return fmt.Errorf("row %d: %w", i, err)
			}
			if _, err := src.Discard(p); err != nil {
				return fmt.Errorf("row %d: %w", i, err)
			}
			if i == rows || p > 0 {
				continue
			}
		}
		// The next String is not whole in the buffer, or there is none.
		n, err := c.strLen(r)
		if err != nil {
			return fmt.Errorf("row %d: read length: %w", i, err)
		}
		dst, err := s.grow(n)
		if err != nil {
			return fmt.Errorf("row %d: %w", i, err)
		}
		if err := c.readFull(r, dst); err != nil {
			return fmt.Errorf("row %d: read %d bytes: %w", i, n, err)
		}
		i++
		offs[i] = int32(s.n)
	}
	s.b.ResizeNoShrink(s.n)
	if rows > 0 {
		c.avg, c.last = s.n/rows, s.n
	}
	return nil
}

// reserve is the bytes to reserve for the Strings of a block of rows: as
// many a String as the last block had, but no more than twice the last
// block's bytes (and 9 a row), so that a block of a few long Strings does
// not size the next, of many short ones, by its average.
func (c *wireCol) reserve(rows int) int {
	return min(rows*(max(c.avg, 8)+1), 2*c.last+9*rows)
}

func (c *wireCol) strLen(r *proto.Reader) (int, error) {
	var n uint64
	var err error
	if c.wire.src != nil {
		n, err = binary.ReadUvarint(c.wire.src)
	} else {
		n, err = r.UVarInt()
	}
	if err != nil {
		return 0, err
	}
	if n > maxWireString {
		return 0, fmt.Errorf("a String of %d bytes is over the %d limit", n, maxWireString)
	}
	return int(n), nil
}

// parse appends the Strings that are whole in win, from row i on, and
// sets their end offsets; it returns the bytes of win it used and the next
// row. It is the hot loop of a String column: a one-byte length is read
// without a call, and a short String is copied as one 16-byte word where
// both sides have room (the bytes past its end are overwritten by the
// next String, or lie past the data's length).
func (s *stringSink) parse(win []byte, offs []int32, i, rows int) (int, int, error) {
	p := 0
	buf, end := s.buf, s.n
	for i < rows && p < len(win) {
		n, k := int(win[p]), 1
		if n >= 0x80 {
			v, kk := binary.Uvarint(win[p:])
			if kk < 0 {
				s.n = end
				return p, i, errors.New("a String length overflows")
			}
			if kk == 0 || v > uint64(len(win)) {
				break // not whole in the buffer
			}
			n, k = int(v), kk
		}
		if n > len(win)-p-k {
			break // not whole in the buffer
		}
		if end+n > len(buf) {
			s.n = end
			if _, err := s.grow(n); err != nil {
				return p, i, err
			}
			s.n = end // grow made room; the copy below fills it
			buf = s.buf
		}
		from := p + k
		if n <= 16 && len(buf)-end >= 16 && len(win)-from >= 16 {
			*(*[16]byte)(buf[end:]) = *(*[16]byte)(win[from:])
		} else {
			copy(buf[end:], win[from:from+n])
		}
		end += n
		p = from + n
		i++
		offs[i] = int32(end)
	}
	s.n = end
	return p, i, nil
}

// stringSink appends a String column's bytes to an Arrow buffer, growing it
// as it must.
type stringSink struct {
	b   *memory.Buffer
	buf []byte // b's whole capacity
	n   int    // bytes so far
}

func (s *stringSink) start(capacity int) {
	s.b.ResizeNoShrink(min(capacity, math.MaxInt32))
	s.buf, s.n = s.room(), 0
}

// room is the buffer's whole capacity, but no more than 32-bit offsets
// can reach, so that no String ends past them.
func (s *stringSink) room() []byte {
	b := s.b.Buf()
	return b[:min(len(b), math.MaxInt32)]
}

// grow extends the bytes by n and returns the n new ones.
func (s *stringSink) grow(n int) ([]byte, error) {
	end := s.n + n
	if end > math.MaxInt32 {
		return nil, errStringsTooLarge
	}
	if end > len(s.buf) {
		s.b.ResizeNoShrink(s.n)
		s.b.Reserve(min(max(2*len(s.buf), end), math.MaxInt32))
		s.buf = s.room()
	}
	s.n = end
	return s.buf[end-n : end], nil
}

// take builds the Arrow data of the decoded block (each value valid unless
// valid says otherwise) and hands it the column's buffers.
func (c *wireCol) take(mem memory.Allocator, dt arrow.DataType, valid []bool) arrow.ArrayData {
	nullBits, nulls := bitmap(mem, valid)
	bufs := []*memory.Buffer{nullBits, c.vals}
	if c.width == 0 {
		bufs = []*memory.Buffer{nullBits, c.offs, c.vals}
	}
	out := arrowData(dt, c.rows, bufs, nulls)
	c.release()
	return out
}

// release drops the column's buffers.
func (c *wireCol) release() {
	for _, b := range []**memory.Buffer{&c.vals, &c.offs} {
		if *b != nil {
			(*b).Release()
			*b = nil
		}
	}
}

// strings calls f with each decoded String's bytes.
func (c *wireCol) strings(f func(i int, v []byte)) {
	offs := arrow.Int32Traits.CastFromBytes(c.offs.Bytes())
	data := c.vals.Bytes()
	for i := range c.rows {
		f(i, data[offs[i]:offs[i+1]])
	}
}

// valuesOf is the decoded values of c as a []T.
func valuesOf[T any](c *wireCol) []T {
	if c.rows == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(c.vals.Bytes()))), c.rows)
}

// wireValues is the column of a fixed-width type T whose wire bytes are its
// Arrow values, appended whole to a builder B where it is nested.
func wireValues[T any, B interface{ AppendValues([]T, []bool) }](w *wire, t proto.ColumnType, uuid bool) column {
	var zero T
	c := &wireCol{typ: t, width: int(unsafe.Sizeof(zero)), uuid: uuid, wire: w}
	return column{res: c, wire: c, direct: c.take, appendTo: func(b array.Builder, valid []bool) {
		b.(B).AppendValues(valuesOf[T](c), valid)
	}}
}

func wireStrings(w *wire) column {
	c := &wireCol{typ: proto.ColumnTypeString, wire: w}
	return column{res: c, wire: c, direct: c.take, appendTo: func(b array.Builder, valid []bool) {
		sb := b.(*array.StringBuilder)
		sb.Reserve(c.rows)
		sb.ReserveData(c.vals.Len())
		c.strings(func(i int, v []byte) {
			if valid != nil && !valid[i] {
				sb.AppendNull()
				return
			}
			sb.BinaryBuilder.Append(v)
		})
	}}
}

func wireFixedStrings(w *wire, t proto.ColumnType, width int) column {
	c := &wireCol{typ: t, width: width, wire: w}
	return column{res: c, wire: c, direct: c.take, appendTo: func(b array.Builder, valid []bool) {
		fb := b.(*array.FixedSizeBinaryBuilder)
		fb.Reserve(c.rows)
		data := c.vals.Bytes()
		for i := range c.rows {
			if valid != nil && !valid[i] {
				fb.AppendNull()
				continue
			}
			fb.Append(data[i*width : (i+1)*width])
		}
	}}
}
