package arrowconv

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/uuid"
)

// column is a ch-go decode target for one ClickHouse column and how to
// append a whole decoded block of it to an Arrow builder.
type column struct {
	res proto.ColResult
	// appendTo appends every decoded value to b, each valid unless valid
	// is non-nil and says otherwise.
	appendTo func(b array.Builder, valid []bool)
	// direct, when set, builds the whole column's Arrow data at once.
	direct directFn
	// wire, when set, is the column's own decoder, whose buffers the
	// reader releases at the end.
	wire *wireCol
}

// blockColumn returns the column of t, decoding with w; false when the
// columnar reader does not convert t (Decimal, LowCardinality, Date32).
func blockColumn(t *chType, w *wire) (column, bool) {
	if strings.HasPrefix(t.name, "LowCardinality(") {
		return column{}, false // dictionary-encoded on the wire
	}
	if t.nullable {
		base := *t
		base.nullable = false
		_, base.name, _ = splitCall(t.name) // Nullable(T): T
		return nullableColumn(&base, w)
	}
	switch t.kind {
	case kindUUID:
		return wireValues[uuid.UUID, *extensions.UUIDBuilder](w, proto.ColumnType(t.name), true), true
	case kindInt8:
		return wireValues[int8, *array.Int8Builder](w, proto.ColumnType(t.name), false), true
	case kindInt16:
		return wireValues[int16, *array.Int16Builder](w, proto.ColumnType(t.name), false), true
	case kindInt32:
		return wireValues[int32, *array.Int32Builder](w, proto.ColumnType(t.name), false), true
	case kindInt64:
		return wireValues[int64, *array.Int64Builder](w, proto.ColumnType(t.name), false), true
	case kindUInt8:
		return wireValues[uint8, *array.Uint8Builder](w, proto.ColumnType(t.name), false), true
	case kindUInt16:
		return wireValues[uint16, *array.Uint16Builder](w, proto.ColumnType(t.name), false), true
	case kindUInt32:
		return wireValues[uint32, *array.Uint32Builder](w, proto.ColumnType(t.name), false), true
	case kindUInt64:
		return wireValues[uint64, *array.Uint64Builder](w, proto.ColumnType(t.name), false), true
	case kindFloat32:
		return wireValues[float32, *array.Float32Builder](w, proto.ColumnType(t.name), false), true
	case kindFloat64:
		return wireValues[float64, *array.Float64Builder](w, proto.ColumnType(t.name), false), true
	case kindBool:
		return values[bool, proto.ColBool, *array.BooleanBuilder](), true
	case kindString:
		return wireStrings(w), true
	case kindEnum:
		return enumColumn(t)
	case kindFixedString:
		if t.width > 0 {
			return wireFixedStrings(w, proto.ColumnType(t.name), t.width), true
		}
		return fixedStringColumn(t.width), true
	case kindDate:
		if t.name != "Date" {
			return column{}, false
		}
		return dateColumn(), true
	case kindDateTime:
		return dateTimeColumn(t)
	case kindArray:
		return arrayColumn(t, w)
	case kindDecimal:
		// ch-go's decimals are raw integers of the column's width; the row
		// reader converts them.
	}
	return column{}, false
}

// values is a column whose ch-go slice the Arrow builder B appends whole.
func values[T any, C ~[]T, B interface{ AppendValues([]T, []bool) }]() column {
	c := new(C)
	res, _ := any(c).(proto.ColResult)
	return column{res: res, appendTo: func(b array.Builder, valid []bool) { b.(B).AppendValues(*c, valid) }}
}

func enumColumn(t *chType) (column, bool) {
	c := new(proto.ColEnum)
	if err := c.Infer(proto.ColumnType(t.name)); err != nil {
		return column{}, false
	}
	return column{res: c, appendTo: func(b array.Builder, valid []bool) {
		b.(*array.StringBuilder).AppendValues(c.Values, valid)
	}}, true
}

func fixedStringColumn(width int) column {
	c := &proto.ColFixedStr{Size: width}
	return column{res: c, appendTo: func(b array.Builder, valid []bool) {
		fb := b.(*array.FixedSizeBinaryBuilder)
		n := c.Rows()
		fb.Reserve(n)
		for i := range n {
			if valid != nil && !valid[i] {
				fb.AppendNull()
				continue
			}
			fb.Append(c.Buf[i*width : (i+1)*width])
		}
	}}
}

func dateColumn() column {
	c := new(proto.ColDate)
	var days []arrow.Date32
	return column{res: c, appendTo: func(b array.Builder, valid []bool) {
		days = days[:0]
		for _, d := range *c {
			days = append(days, arrow.Date32(d))
		}
		b.(*array.Date32Builder).AppendValues(days, valid)
	}}
}

func dateTimeColumn(t *chType) (column, bool) {
	c := new(proto.ColDateTime)
	if t.tz != "" {
		loc, err := time.LoadLocation(t.tz)
		if err != nil {
			return column{}, false
		}
		c.Location = loc
	}
	var secs []arrow.Timestamp
	return column{res: c, appendTo: func(b array.Builder, valid []bool) {
		secs = secs[:0]
		for _, s := range c.Data {
			secs = append(secs, arrow.Timestamp(s))
		}
		b.(*array.TimestampBuilder).AppendValues(secs, valid)
	}}, true
}

// nullableColumn decodes Nullable(T): a null map, then T's values.
func nullableColumn(base *chType, w *wire) (column, bool) {
	inner, ok := blockColumn(base, w)
	if !ok {
		return column{}, false
	}
	n := &nullCol{values: inner.res}
	var valid []bool
	validity := func() []bool {
		valid = valid[:0]
		for _, null := range n.nulls {
			valid = append(valid, null == 0)
		}
		return valid
	}
	col := column{res: n, wire: inner.wire, appendTo: func(b array.Builder, _ []bool) { inner.appendTo(b, validity()) }}
	if inner.direct != nil {
		col.direct = func(mem memory.Allocator, dt arrow.DataType, _ []bool) arrow.ArrayData {
			return inner.direct(mem, dt, validity())
		}
	}
	return col, true
}

// nullCol is the ch-go decode target of Nullable(T).
type nullCol struct {
	nulls  proto.ColUInt8
	values proto.ColResult
}

func (n *nullCol) Type() proto.ColumnType { return proto.ColumnTypeNullable.Sub(n.values.Type()) }
func (n *nullCol) Rows() int              { return n.nulls.Rows() }

func (n *nullCol) Reset() {
	n.nulls.Reset()
	n.values.Reset()
}

func (n *nullCol) DecodeColumn(r *proto.Reader, rows int) error {
	if err := n.nulls.DecodeColumn(r, rows); err != nil {
		return err
	}
	return n.values.DecodeColumn(r, rows)
}

// arrayColumn decodes Array(T): the end offset of every row's elements,
// then the elements.
func arrayColumn(t *chType, w *wire) (column, bool) {
	elem, ok := blockColumn(t.elem, w)
	if !ok {
		return column{}, false
	}
	a := &arrayCol{elems: elem.res}
	var starts []int32
	var valid []bool
	return column{res: a, wire: elem.wire, appendTo: func(b array.Builder, _ []bool) {
		lb := b.(*array.ListBuilder)
		vb := lb.ValueBuilder()
		base := int32(vb.Len())
		starts, valid = starts[:0], valid[:0]
		prev := int32(0)
		for _, end := range a.offsets {
			starts = append(starts, base+prev)
			valid = append(valid, true)
			prev = int32(end)
		}
		lb.AppendValues(starts, valid)
		elem.appendTo(vb, nil)
	}}, true
}

// arrayCol is the ch-go decode target of Array(T).
type arrayCol struct {
	offsets proto.ColUInt64
	elems   proto.ColResult
}

func (a *arrayCol) Type() proto.ColumnType { return a.elems.Type().Array() }
func (a *arrayCol) Rows() int              { return a.offsets.Rows() }

func (a *arrayCol) Reset() {
	a.offsets.Reset()
	a.elems.Reset()
}

func (a *arrayCol) DecodeColumn(r *proto.Reader, rows int) error {
	if err := a.offsets.DecodeColumn(r, rows); err != nil {
		return err
	}
	// The offsets come from the server: they must not fall, and Arrow's
	// 32-bit list offsets bound the elements of a block.
	prev := uint64(0)
	for i, end := range a.offsets {
		if end < prev || end > math.MaxInt32 {
			return fmt.Errorf("array row %d ends at element %d, after %d: out of order or past 2^31-1", i, end, prev)
		}
		prev = end
	}
	return a.elems.DecodeColumn(r, int(prev))
}
