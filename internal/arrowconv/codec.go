package arrowconv

import (
	"fmt"
	"reflect"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/google/uuid"
	"github.com/shopspring/decimal"
)

// codec converts the values of one ClickHouse type between the Go type
// clickhouse-go scans and appends (UUID: uuid.UUID, Nullable(X): *X,
// DateTime: time.Time, Array(String): []string, …) and Arrow.
type codec interface {
	// goType is the Go type of one value.
	goType() reflect.Type
	// newDest returns a scan target: a pointer to a goType value.
	newDest() any
	// appendDest appends the value newDest's pointer holds to b.
	appendDest(b array.Builder, dest any)
	// bind returns a function that appends the value dest (from newDest)
	// holds to b: appendDest with the type checks done once.
	bind(b array.Builder, dest any) func()
	// size estimates the bytes appendDest adds for the value at dest.
	size(dest any) int
	// fixedSize is size when it does not depend on the value.
	fixedSize() (int, bool)
	// putAny appends v, of goType, to b.
	putAny(b array.Builder, v any)
	// getAny returns a's i-th value as goType.
	getAny(a arrow.Array, i int) any
	// column returns a's values as a []goType for driver.BatchColumn.Append.
	column(a arrow.Array) (any, error)
	// badNulls reports whether a holds NULLs this type cannot take.
	badNulls(a arrow.Array) bool
	// list returns the codec of Array(this type).
	list() codec
}

// typed is a codec whose Go type is known at compile time.
type typed[T any] interface {
	codec
	put(b array.Builder, v T)
	get(a arrow.Array, i int) T
}

// scalar is a non-nullable base type.
type scalar[T any] struct {
	putFn  func(b array.Builder, v T)
	getFn  func(a arrow.Array, i int) T
	sizeFn func(v T) int
	width  int
	// values, when set, returns a null-free array's values without copying.
	values func(a arrow.Array) []T
	// bindFn, when set, is bind's fast path.
	bindFn func(b array.Builder, d *T) func()
}

func (c scalar[T]) bind(b array.Builder, d any) func() {
	dest := d.(*T)
	if c.bindFn != nil {
		return c.bindFn(b, dest)
	}
	put := c.putFn
	return func() { put(b, *dest) }
}

func (c scalar[T]) fixedSize() (int, bool) { return c.width, c.sizeFn == nil }

func (c scalar[T]) put(b array.Builder, v T)          { c.putFn(b, v) }
func (c scalar[T]) get(a arrow.Array, i int) T        { return c.getFn(a, i) }
func (c scalar[T]) goType() reflect.Type              { return reflect.TypeFor[T]() }
func (c scalar[T]) newDest() any                      { return new(T) }
func (c scalar[T]) appendDest(b array.Builder, d any) { c.putFn(b, *d.(*T)) }
func (c scalar[T]) putAny(b array.Builder, v any)     { c.putFn(b, v.(T)) }
func (c scalar[T]) getAny(a arrow.Array, i int) any   { return c.getFn(a, i) }
func (c scalar[T]) badNulls(a arrow.Array) bool       { return a.NullN() > 0 }
func (c scalar[T]) list() codec                       { return list[T]{elem: c} }
func (c scalar[T]) valueSize(v T) int {
	if c.sizeFn != nil {
		return c.sizeFn(v)
	}
	return c.width
}
func (c scalar[T]) size(d any) int { return c.valueSize(*d.(*T)) }

func (c scalar[T]) column(a arrow.Array) (any, error) {
	if c.values != nil {
		return c.values(a), nil
	}
	out := make([]T, a.Len())
	for i := range out {
		out[i] = c.getFn(a, i)
	}
	return out, nil
}

// nullable is Nullable(T): *T, nil for NULL.
type nullable[T any] struct{ elem scalar[T] }

func (c nullable[T]) put(b array.Builder, v *T) {
	if v == nil {
		b.AppendNull()
		return
	}
	c.elem.putFn(b, *v)
}

func (c nullable[T]) get(a arrow.Array, i int) *T {
	if a.IsNull(i) {
		return nil
	}
	v := c.elem.getFn(a, i)
	return &v
}

func (c nullable[T]) goType() reflect.Type              { return reflect.TypeFor[*T]() }
func (c nullable[T]) newDest() any                      { return new(*T) }
func (c nullable[T]) appendDest(b array.Builder, d any) { c.put(b, *d.(**T)) }
func (c nullable[T]) putAny(b array.Builder, v any)     { c.put(b, v.(*T)) }
func (c nullable[T]) getAny(a arrow.Array, i int) any   { return c.get(a, i) }
func (c nullable[T]) badNulls(arrow.Array) bool         { return false }
func (c nullable[T]) list() codec                       { return list[*T]{elem: c} }
func (c nullable[T]) bind(b array.Builder, d any) func() {
	dest := d.(**T)
	put := c.elem.putFn
	return func() {
		if p := *dest; p != nil {
			put(b, *p)
		} else {
			b.AppendNull()
		}
	}
}

func (c nullable[T]) fixedSize() (int, bool) {
	w, ok := c.elem.fixedSize()
	return 1 + w, ok
}

func (c nullable[T]) size(d any) int {
	if p := *d.(**T); p != nil {
		return 1 + c.elem.valueSize(*p)
	}
	return 1 + c.elem.width // a NULL takes a value's slot
}

func (c nullable[T]) column(a arrow.Array) (any, error) {
	n := a.Len()
	vals := make([]T, n)
	out := make([]*T, n)
	for i := range out {
		if !a.IsNull(i) {
			vals[i] = c.elem.getFn(a, i)
			out[i] = &vals[i]
		}
	}
	return out, nil
}

// list is Array(E) for a scalar or nullable E.
type list[E any] struct{ elem typed[E] }

func (c list[E]) put(b array.Builder, v []E) {
	lb := b.(*array.ListBuilder)
	lb.Append(true)
	vb := lb.ValueBuilder()
	for _, e := range v {
		c.elem.put(vb, e)
	}
}

func (c list[E]) get(a arrow.Array, i int) []E {
	la := a.(*array.List)
	start, end := la.ValueOffsets(i)
	vals := la.ListValues()
	out := make([]E, 0, end-start)
	for j := start; j < end; j++ {
		out = append(out, c.elem.get(vals, int(j)))
	}
	return out
}

func (c list[E]) goType() reflect.Type              { return reflect.TypeFor[[]E]() }
func (c list[E]) newDest() any                      { return new([]E) }
func (c list[E]) appendDest(b array.Builder, d any) { c.put(b, *d.(*[]E)) }
func (c list[E]) putAny(b array.Builder, v any)     { c.put(b, v.([]E)) }
func (c list[E]) getAny(a arrow.Array, i int) any   { return c.get(a, i) }
func (c list[E]) list() codec                       { return anyList{elem: c} }
func (c list[E]) badNulls(a arrow.Array) bool {
	return a.NullN() > 0 || c.elem.badNulls(a.(*array.List).ListValues())
}

func (c list[E]) bind(b array.Builder, d any) func() {
	dest := d.(*[]E)
	return func() { c.put(b, *dest) }
}

func (c list[E]) fixedSize() (int, bool) { return 0, false }

func (c list[E]) size(d any) int {
	n := 8
	for _, e := range *d.(*[]E) {
		n += c.elem.size(&e)
	}
	return n
}

func (c list[E]) column(a arrow.Array) (any, error) {
	out := make([][]E, a.Len())
	for i := range out {
		out[i] = c.get(a, i)
	}
	return out, nil
}

// anyList is Array(Array(…)): nested arrays, through reflection.
type anyList struct{ elem codec }

func (c anyList) goType() reflect.Type { return reflect.SliceOf(c.elem.goType()) }
func (c anyList) newDest() any         { return reflect.New(c.goType()).Interface() }
func (c anyList) appendDest(b array.Builder, d any) {
	c.putAny(b, reflect.ValueOf(d).Elem().Interface())
}
func (c anyList) list() codec { return anyList{elem: c} }
func (c anyList) badNulls(a arrow.Array) bool {
	return a.NullN() > 0 || c.elem.badNulls(a.(*array.List).ListValues())
}

func (c anyList) bind(b array.Builder, d any) func() { return func() { c.appendDest(b, d) } }

func (c anyList) fixedSize() (int, bool) { return 0, false }

func (c anyList) size(d any) int {
	v := reflect.ValueOf(d).Elem()
	n := 8
	for i := range v.Len() {
		n += c.elem.size(v.Index(i).Addr().Interface())
	}
	return n
}

func (c anyList) putAny(b array.Builder, v any) {
	lb := b.(*array.ListBuilder)
	lb.Append(true)
	vb := lb.ValueBuilder()
	rv := reflect.ValueOf(v)
	for i := range rv.Len() {
		c.elem.putAny(vb, rv.Index(i).Interface())
	}
}

func (c anyList) getAny(a arrow.Array, i int) any {
	la := a.(*array.List)
	start, end := la.ValueOffsets(i)
	vals := la.ListValues()
	out := reflect.MakeSlice(c.goType(), int(end-start), int(end-start))
	for j := start; j < end; j++ {
		out.Index(int(j - start)).Set(reflect.ValueOf(c.elem.getAny(vals, int(j))))
	}
	return out.Interface()
}

func (c anyList) column(a arrow.Array) (any, error) {
	out := reflect.MakeSlice(reflect.SliceOf(c.goType()), a.Len(), a.Len())
	for i := range a.Len() {
		out.Index(i).Set(reflect.ValueOf(c.getAny(a, i)))
	}
	return out.Interface(), nil
}

// prim is the scalar codec of a primitive Arrow type whose Go value type is
// the one clickhouse-go uses.
func prim[T any, B interface{ Append(T) }, A interface {
	Value(int) T
	Values() []T
}](width int) scalar[T] {
	return scalar[T]{
		putFn:  func(b array.Builder, v T) { b.(B).Append(v) },
		getFn:  func(a arrow.Array, i int) T { return a.(A).Value(i) },
		values: func(a arrow.Array) []T { return a.(A).Values() },
		bindFn: func(b array.Builder, d *T) func() {
			bb := b.(B)
			return func() { bb.Append(*d) }
		},
		width: width,
	}
}

const secondsPerDay = 24 * 60 * 60

// days is the number of days from the epoch to t's calendar date (in t's
// location: clickhouse-go returns a Date as midnight of that date).
func days(t time.Time) arrow.Date32 {
	y, m, d := t.Date()
	return arrow.Date32(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / secondsPerDay)
}

var (
	uuidCodec = scalar[uuid.UUID]{
		putFn: func(b array.Builder, v uuid.UUID) { b.(*extensions.UUIDBuilder).Append(v) },
		bindFn: func(b array.Builder, d *uuid.UUID) func() {
			fb := b.(*extensions.UUIDBuilder).Builder.(*array.FixedSizeBinaryBuilder)
			return func() { fb.Append(d[:]) }
		},
		getFn: func(a arrow.Array, i int) uuid.UUID { return a.(*extensions.UUIDArray).Value(i) },
		width: 16,
	}
	// Values of String arrays alias Arrow memory: clickhouse-go copies them
	// into its block when they are appended, while the record is alive.
	stringCodec = scalar[string]{
		putFn: func(b array.Builder, v string) { b.(*array.StringBuilder).Append(v) },
		bindFn: func(b array.Builder, d *string) func() {
			sb := b.(*array.StringBuilder)
			return func() { sb.Append(*d) }
		},
		getFn:  func(a arrow.Array, i int) string { return a.(*array.String).Value(i) },
		sizeFn: func(v string) int { return 4 + len(v) },
	}
	fixedStringCodec = scalar[string]{
		putFn: func(b array.Builder, v string) { b.(*array.FixedSizeBinaryBuilder).Append([]byte(v)) },
		getFn: func(a arrow.Array, i int) string { return string(a.(*array.FixedSizeBinary).Value(i)) },
	}
	boolCodec = scalar[bool]{
		putFn: func(b array.Builder, v bool) { b.(*array.BooleanBuilder).Append(v) },
		getFn: func(a arrow.Array, i int) bool { return a.(*array.Boolean).Value(i) },
		width: 1,
	}
	dateCodec = scalar[time.Time]{
		putFn: func(b array.Builder, v time.Time) { b.(*array.Date32Builder).Append(days(v)) },
		getFn: func(a arrow.Array, i int) time.Time {
			return time.Unix(int64(a.(*array.Date32).Value(i))*secondsPerDay, 0).UTC()
		},
		width: 4,
	}
	dateTimeCodec = scalar[time.Time]{
		putFn: func(b array.Builder, v time.Time) { b.(*array.TimestampBuilder).Append(arrow.Timestamp(v.Unix())) },
		getFn: func(a arrow.Array, i int) time.Time {
			return time.Unix(int64(a.(*array.Timestamp).Value(i)), 0).UTC()
		},
		width: 8,
	}
)

func decimalCodec(scale int32) scalar[decimal.Decimal] {
	return scalar[decimal.Decimal]{
		putFn: func(b array.Builder, v decimal.Decimal) {
			b.(*array.Decimal128Builder).Append(decimal128.FromBigInt(v.Shift(scale).BigInt()))
		},
		getFn: func(a arrow.Array, i int) decimal.Decimal {
			return decimal.NewFromBigInt(a.(*array.Decimal128).Value(i).BigInt(), -scale)
		},
		width: 16,
	}
}

// newCodec returns the codec of t.
func newCodec(t *chType) codec {
	switch t.kind {
	case kindArray:
		return newCodec(t.elem).list()
	case kindUUID:
		return wrap(t, uuidCodec)
	case kindString, kindEnum:
		return wrap(t, stringCodec)
	case kindFixedString:
		c := fixedStringCodec
		c.width = t.width
		return wrap(t, c)
	case kindInt8:
		return wrap(t, prim[int8, *array.Int8Builder, *array.Int8](1))
	case kindInt16:
		return wrap(t, prim[int16, *array.Int16Builder, *array.Int16](2))
	case kindInt32:
		return wrap(t, prim[int32, *array.Int32Builder, *array.Int32](4))
	case kindInt64:
		return wrap(t, prim[int64, *array.Int64Builder, *array.Int64](8))
	case kindUInt8:
		return wrap(t, prim[uint8, *array.Uint8Builder, *array.Uint8](1))
	case kindUInt16:
		return wrap(t, prim[uint16, *array.Uint16Builder, *array.Uint16](2))
	case kindUInt32:
		return wrap(t, prim[uint32, *array.Uint32Builder, *array.Uint32](4))
	case kindUInt64:
		return wrap(t, prim[uint64, *array.Uint64Builder, *array.Uint64](8))
	case kindFloat32:
		return wrap(t, prim[float32, *array.Float32Builder, *array.Float32](4))
	case kindFloat64:
		return wrap(t, prim[float64, *array.Float64Builder, *array.Float64](8))
	case kindBool:
		return wrap(t, boolCodec)
	case kindDate:
		return wrap(t, dateCodec)
	case kindDateTime:
		return wrap(t, dateTimeCodec)
	case kindDecimal:
		return wrap(t, decimalCodec(t.scale))
	}
	panic(fmt.Sprintf("arrowconv: kind %d has no codec", t.kind))
}

func wrap[T any](t *chType, c scalar[T]) codec {
	if t.nullable {
		return nullable[T]{elem: c}
	}
	return c
}
