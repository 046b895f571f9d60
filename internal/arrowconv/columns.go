package arrowconv

import (
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
}

// blockColumn returns the column of t; false when the columnar reader does
// not convert t (Decimal, LowCardinality, Date32).
func blockColumn(t *chType) (column, bool) {
	if strings.HasPrefix(t.name, "LowCardinality(") {
		return column{}, false // dictionary-encoded on the wire
	}
	if t.nullable {
		base := *t
		base.nullable = false
		_, base.name, _ = splitCall(t.name) // Nullable(T): T
		return nullableColumn(&base)
	}
	switch t.kind {
	case kindUUID:
		return values[uuid.UUID, proto.ColUUID, *extensions.UUIDBuilder](true), true
	case kindInt8:
		return values[int8, proto.ColInt8, *array.Int8Builder](true), true
	case kindInt16:
		return values[int16, proto.ColInt16, *array.Int16Builder](true), true
	case kindInt32:
		return values[int32, proto.ColInt32, *array.Int32Builder](true), true
	case kindInt64:
		return values[int64, proto.ColInt64, *array.Int64Builder](true), true
	case kindUInt8:
		return values[uint8, proto.ColUInt8, *array.Uint8Builder](true), true
	case kindUInt16:
		return values[uint16, proto.ColUInt16, *array.Uint16Builder](true), true
	case kindUInt32:
		return values[uint32, proto.ColUInt32, *array.Uint32Builder](true), true
	case kindUInt64:
		return values[uint64, proto.ColUInt64, *array.Uint64Builder](true), true
	case kindFloat32:
		return values[float32, proto.ColFloat32, *array.Float32Builder](true), true
	case kindFloat64:
		return values[float64, proto.ColFloat64, *array.Float64Builder](true), true
	case kindBool:
		return values[bool, proto.ColBool, *array.BooleanBuilder](false), true
	case kindString:
		return stringColumn(), true
	case kindEnum:
		return enumColumn(t)
	case kindFixedString:
		return fixedStringColumn(t.width), true
	case kindDate:
		if t.name != "Date" {
			return column{}, false
		}
		return dateColumn(), true
	case kindDateTime:
		return dateTimeColumn(t)
	case kindArray:
		return arrayColumn(t)
	case kindDecimal:
		// ch-go's decimals are raw integers of the column's width; the row
		// reader converts them.
	}
	return column{}, false
}

// values is a column whose ch-go slice the Arrow builder B appends whole;
// fixed when the slice's bytes are the Arrow array's values buffer.
func values[T any, C ~[]T, B interface{ AppendValues([]T, []bool) }](fixed bool) column {
	c := new(C)
	res, _ := any(c).(proto.ColResult)
	col := column{res: res, appendTo: func(b array.Builder, valid []bool) { b.(B).AppendValues(*c, valid) }}
	if fixed {
		col.direct = fixedDirect(func() []T { return []T(*c) })
	}
	return col
}

func stringColumn() column {
	c := new(proto.ColStr)
	return column{res: c, direct: stringDirect(c), appendTo: func(b array.Builder, valid []bool) {
		sb := b.(*array.StringBuilder)
		sb.Reserve(len(c.Pos))
		sb.ReserveData(len(c.Buf))
		for i, p := range c.Pos {
			if valid != nil && !valid[i] {
				sb.AppendNull()
				continue
			}
			sb.BinaryBuilder.Append(c.Buf[p.Start:p.End])
		}
	}}
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
func nullableColumn(base *chType) (column, bool) {
	inner, ok := blockColumn(base)
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
	col := column{res: n, appendTo: func(b array.Builder, _ []bool) { inner.appendTo(b, validity()) }}
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
func arrayColumn(t *chType) (column, bool) {
	elem, ok := blockColumn(t.elem)
	if !ok {
		return column{}, false
	}
	a := &arrayCol{elems: elem.res}
	var starts []int32
	var valid []bool
	return column{res: a, appendTo: func(b array.Builder, _ []bool) {
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
	size := 0
	if n := len(a.offsets); n > 0 {
		size = int(a.offsets[n-1])
	}
	return a.elems.DecodeColumn(r, size)
}
