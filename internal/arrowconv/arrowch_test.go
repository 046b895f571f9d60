package arrowconv

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/uuid"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
)

func TestArrowType(t *testing.T) {
	t.Parallel()
	ts := func(tz string) arrow.DataType { return &arrow.TimestampType{Unit: arrow.Second, TimeZone: tz} }
	listOf := func(dt arrow.DataType, nullable bool) arrow.DataType {
		return arrow.ListOfField(arrow.Field{Name: "item", Type: dt, Nullable: nullable})
	}
	cases := []struct {
		ch   string
		want arrow.DataType
	}{
		{"UUID", extensions.NewUUIDType()},
		{"Nullable(UUID)", extensions.NewUUIDType()},
		{"String", arrow.BinaryTypes.String},
		{"Nullable(String)", arrow.BinaryTypes.String},
		{"LowCardinality(String)", arrow.BinaryTypes.String},
		{"LowCardinality(Nullable(String))", arrow.BinaryTypes.String},
		{"FixedString(3)", &arrow.FixedSizeBinaryType{ByteWidth: 3}},
		{"Enum8('a' = 1, 'b' = 2)", arrow.BinaryTypes.String},
		{"Enum16('x' = 1000)", arrow.BinaryTypes.String},
		{"Int8", arrow.PrimitiveTypes.Int8},
		{"Int16", arrow.PrimitiveTypes.Int16},
		{"Int32", arrow.PrimitiveTypes.Int32},
		{"Int64", arrow.PrimitiveTypes.Int64},
		{"UInt8", arrow.PrimitiveTypes.Uint8},
		{"Nullable(UInt8)", arrow.PrimitiveTypes.Uint8},
		{"UInt16", arrow.PrimitiveTypes.Uint16},
		{"UInt32", arrow.PrimitiveTypes.Uint32},
		{"Nullable(UInt32)", arrow.PrimitiveTypes.Uint32},
		{"UInt64", arrow.PrimitiveTypes.Uint64},
		{"Float32", arrow.PrimitiveTypes.Float32},
		{"Float64", arrow.PrimitiveTypes.Float64},
		{"Nullable(Float64)", arrow.PrimitiveTypes.Float64},
		{"Bool", arrow.FixedWidthTypes.Boolean},
		{"Date", arrow.FixedWidthTypes.Date32},
		{"Date32", arrow.FixedWidthTypes.Date32},
		{"DateTime", ts("UTC")},
		{"DateTime('Europe/Berlin')", ts("Europe/Berlin")},
		{"Nullable(DateTime)", ts("UTC")},
		{"Decimal(10, 3)", &arrow.Decimal128Type{Precision: 10, Scale: 3}},
		{"Decimal32(2)", &arrow.Decimal128Type{Precision: 9, Scale: 2}},
		{"Decimal64(4)", &arrow.Decimal128Type{Precision: 18, Scale: 4}},
		{"Decimal128(6)", &arrow.Decimal128Type{Precision: 38, Scale: 6}},
		{"Array(String)", listOf(arrow.BinaryTypes.String, false)},
		{"Array(Nullable(Int32))", listOf(arrow.PrimitiveTypes.Int32, true)},
		{"Array(UUID)", listOf(extensions.NewUUIDType(), false)},
		{"Array(Array(UInt8))", listOf(listOf(arrow.PrimitiveTypes.Uint8, false), false)},
	}
	for _, c := range cases {
		t.Run(c.ch, func(t *testing.T) {
			t.Parallel()
			got, err := ArrowType(c.ch)
			require.NoError(t, err)
			require.True(t, arrow.TypeEqual(c.want, got), "want %s, got %s", c.want, got)
		})
	}
}

func TestArrowTypeUnknown(t *testing.T) {
	t.Parallel()
	for _, ch := range []string{
		"DateTime64(3)", "Int128", "Map(String, UInt8)", "Tuple(a UInt8)", "Nullable(Array(String))",
		"Nullable(Nullable(UInt8))", "FixedString(x)", "Decimal(40, 2)", "Decimal(5, 6)", "", "Array(Bogus)",
	} {
		_, err := ArrowType(ch)
		require.ErrorIs(t, err, ErrUnsupportedType, ch)
		if ch != "" {
			require.ErrorContains(t, err, ch)
		}
	}
}

func TestSchema(t *testing.T) {
	t.Parallel()
	s, err := Schema([]string{"id", "note", "tags"}, []string{"UUID", "Nullable(String)", "Array(String)"})
	require.NoError(t, err)
	require.Equal(t, 3, s.NumFields())
	require.False(t, s.Field(0).Nullable)
	require.True(t, s.Field(1).Nullable)
	require.False(t, s.Field(2).Nullable)
	typ, ok := s.Field(1).Metadata.GetValue(MetadataType)
	require.True(t, ok)
	require.Equal(t, "Nullable(String)", typ)

	_, err = Schema([]string{"a"}, []string{"UInt8", "UInt8"})
	require.Error(t, err)
	_, err = Schema([]string{"a"}, []string{"Whatever"})
	require.ErrorIs(t, err, ErrUnsupportedType)
	require.ErrorContains(t, err, "column a")
}

func ptr[T any](v T) *T { return &v }

// conversions holds, per ClickHouse type, Go values as clickhouse-go scans
// and appends them.
var conversions = []struct {
	ch   string
	vals any // []GoType
}{
	{"UUID", []uuid.UUID{uuid.MustParse("6ba7b810-9dad-11d1-80b4-00c04fd430c8"), {}}},
	{"Nullable(UUID)", []*uuid.UUID{ptr(uuid.MustParse("6ba7b811-9dad-11d1-80b4-00c04fd430c8")), nil}},
	{"String", []string{"", "neuron", "ünïcode"}},
	{"Nullable(String)", []*string{ptr("a"), nil, ptr("")}},
	{"Enum8('a' = 1, 'b' = 2)", []string{"a", "b"}},
	{"FixedString(3)", []string{"abc", "x\x00\x00"}},
	{"Int8", []int8{-128, 0, 127}},
	{"Int16", []int16{-32768, 1}},
	{"Int32", []int32{-1, 1 << 30}},
	{"Int64", []int64{-1 << 62, 7}},
	{"UInt8", []uint8{0, 1, 255}},
	{"Nullable(UInt8)", []*uint8{ptr(uint8(1)), nil}},
	{"UInt16", []uint16{65535}},
	{"UInt32", []uint32{4294967295, 0}},
	{"Nullable(UInt32)", []*uint32{nil, ptr(uint32(42))}},
	{"UInt64", []uint64{1 << 63}},
	{"Float32", []float32{1.5, -0}},
	{"Float64", []float64{3.25, 1e300}},
	{"Nullable(Float64)", []*float64{ptr(2.5), nil}},
	{"Bool", []bool{true, false}},
	{"Date", []time.Time{time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), time.Unix(0, 0).UTC()}},
	{"DateTime", []time.Time{time.Date(2024, 5, 1, 12, 30, 5, 0, time.UTC)}},
	{"Nullable(DateTime)", []*time.Time{nil, ptr(time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC))}},
	{"Decimal(10, 3)", []decimal.Decimal{decimal.RequireFromString("1234567.891"), decimal.RequireFromString("-0.001")}},
	{"Array(String)", [][]string{{"a", "b"}, {}, {"c"}}},
	{"Array(Nullable(UInt32))", [][]*uint32{{ptr(uint32(1)), nil}, {}}},
	{"Array(UUID)", [][]uuid.UUID{{uuid.MustParse("6ba7b812-9dad-11d1-80b4-00c04fd430c8")}}},
	{"Array(Array(UInt8))", [][][]uint8{{{1, 2}, {}}, {}, {{3}}}},
}

// TestConversionRoundTrip converts Go values to Arrow (as the Reader does
// after a scan) and back (as the Inserter does before an append).
func TestConversionRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range conversions {
		t.Run(c.ch, func(t *testing.T) {
			t.Parallel()
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			ct, err := parseType(c.ch)
			require.NoError(t, err)
			cd := newCodec(ct)
			vals := reflect.ValueOf(c.vals)
			require.Equal(t, cd.goType(), vals.Type().Elem(), "codec Go type")
			// The Reader's path (bind, one scan target reused) and
			// appendDest build the same array.
			b, b2 := array.NewBuilder(mem, ct.arrowType()), array.NewBuilder(mem, ct.arrowType())
			defer b.Release()
			defer b2.Release()
			dest := cd.newDest()
			appendRow := cd.bind(b, dest)
			for i := range vals.Len() {
				reflect.ValueOf(dest).Elem().Set(vals.Index(i))
				require.Positive(t, cd.size(dest))
				if w, ok := cd.fixedSize(); ok {
					require.Equal(t, w, cd.size(dest))
				}
				appendRow()
				cd.appendDest(b2, dest)
			}
			arr, arr2 := b.NewArray(), b2.NewArray()
			defer arr.Release()
			defer arr2.Release()
			require.True(t, array.Equal(arr, arr2), "bind and appendDest differ: %s vs %s", arr, arr2)
			require.True(t, arrow.TypeEqual(ct.arrowType(), arr.DataType()))
			require.False(t, cd.badNulls(arr))
			got, err := cd.column(arr)
			require.NoError(t, err)
			require.Equal(t, normalize(c.vals), normalize(got))
			for i := range vals.Len() {
				require.Equal(t, normalize(vals.Index(i).Interface()), normalize(cd.getAny(arr, i)))
			}
		})
	}
}

// normalize makes values comparable: decimals by their string, times in UTC,
// empty and nil slices alike.
func normalize(v any) any {
	switch x := v.(type) {
	case []decimal.Decimal:
		out := make([]string, len(x))
		for i, d := range x {
			out[i] = d.String()
		}
		return out
	case decimal.Decimal:
		return x.String()
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice {
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = normalize(rv.Index(i).Interface())
		}
		return out
	}
	if rv.Kind() == reflect.Pointer && !rv.IsNil() {
		return normalize(rv.Elem().Interface())
	}
	if t, ok := v.(time.Time); ok {
		return t.UTC()
	}
	return v
}

func TestDateInServerZone(t *testing.T) {
	t.Parallel()
	// clickhouse-go returns a Date as midnight in the server's zone.
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	require.Equal(t, arrow.Date32(19782), days(time.Date(2024, 2, 29, 0, 0, 0, 0, berlin)))
	require.Equal(t, arrow.Date32(19782), days(time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)))
}

// fakeColumns records what an Inserter appends.
type fakeColumns struct{ got map[int]any }

func (f *fakeColumns) Column(i int) driver.BatchColumn { return fakeColumn{f, i} }

type fakeColumn struct {
	f *fakeColumns
	i int
}

func (c fakeColumn) Append(v any) error {
	c.f.got[c.i] = v
	return nil
}
func (c fakeColumn) AppendRow(any) error { return errors.New("not used") }

func TestInserter(t *testing.T) {
	t.Parallel()
	table := []string{"id", "dataset_id", "volume", "tags", "created_at"}
	types := []string{"UUID", "Nullable(UUID)", "Nullable(Float64)", "Array(String)", "DateTime"}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	// A subset of the columns, in another order, arrow.ListOf's nullable
	// elements and a zoned timestamp: all fit.
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "volume", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "id", Type: extensions.NewUUIDType(), Nullable: true},
		{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String)},
		{Name: "created_at", Type: &arrow.TimestampType{Unit: arrow.Second, TimeZone: "Europe/Berlin"}},
	}, nil)
	in, err := NewInserter("neuron", table, types, schema)
	require.NoError(t, err)
	require.Equal(t, "INSERT INTO `neuron` (`volume`, `id`, `tags`, `created_at`)", in.Query())

	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	id := uuid.MustParse("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	b.Field(0).(*array.Float64Builder).AppendValues([]float64{1.5, 0}, []bool{true, false})
	b.Field(1).(*extensions.UUIDBuilder).AppendValues([]uuid.UUID{id, id}, nil)
	lb := b.Field(2).(*array.ListBuilder)
	lb.Append(true)
	lb.ValueBuilder().(*array.StringBuilder).AppendValues([]string{"x", "y"}, nil)
	lb.Append(true)
	b.Field(3).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{0, 86400}, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()

	cols := &fakeColumns{got: map[int]any{}}
	require.NoError(t, in.Append(cols, rec))
	require.Equal(t, []*float64{ptr(1.5), nil}, cols.got[0])
	require.Equal(t, []uuid.UUID{id, id}, cols.got[1])
	require.Equal(t, [][]string{{"x", "y"}, {}}, cols.got[2])
	require.Equal(t, []time.Time{time.Unix(0, 0).UTC(), time.Unix(86400, 0).UTC()}, cols.got[3])

	// NULLs in a column that is not Nullable: refused, nothing appended.
	b.Field(0).(*array.Float64Builder).Append(1)
	b.Field(1).(*extensions.UUIDBuilder).AppendNull()
	b.Field(2).(*array.ListBuilder).Append(true)
	b.Field(3).(*array.TimestampBuilder).Append(1)
	bad := b.NewRecordBatch()
	defer bad.Release()
	cols = &fakeColumns{got: map[int]any{}}
	err = in.Append(cols, bad)
	require.ErrorIs(t, err, ErrSchema)
	require.ErrorContains(t, err, "column id holds NULLs")
	require.Empty(t, cols.got)
}

func TestInserterRefuses(t *testing.T) {
	t.Parallel()
	table := []string{"id", "n", "tags"}
	types := []string{"UUID", "UInt32", "Array(String)"}
	cases := []struct {
		name   string
		fields []arrow.Field
		want   string
	}{
		{"missing column", []arrow.Field{{Name: "nope", Type: arrow.PrimitiveTypes.Uint32}}, `has no column "nope"`},
		{"type mismatch", []arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64}}, "column n is int64 in the records, but ClickHouse UInt32 takes uint32"},
		{"uuid as string", []arrow.Field{{Name: "id", Type: arrow.BinaryTypes.String}}, "column id is utf8"},
		{"list element", []arrow.Field{{Name: "tags", Type: arrow.ListOf(arrow.PrimitiveTypes.Int8)}}, "column tags"},
		{"twice", []arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Uint32}, {Name: "n", Type: arrow.PrimitiveTypes.Uint32}}, "appears twice"},
		{"no columns", nil, "no columns"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewInserter("t", table, types, arrow.NewSchema(c.fields, nil))
			require.ErrorIs(t, err, ErrSchema)
			require.ErrorContains(t, err, c.want)
		})
	}
	_, err := NewInserter("t; DROP", table, types, arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Uint32}}, nil))
	require.ErrorIs(t, err, ErrSchema)
}

// fakeRows serves rows of Go values through driver.Rows.
type fakeRows struct {
	driver.Rows
	names []string
	rows  [][]any
	i     int
	err   error
	// closed counts Close calls.
	closed int
}

func (f *fakeRows) Columns() []string { return f.names }
func (f *fakeRows) Next() bool {
	if f.i >= len(f.rows) {
		return false
	}
	f.i++
	return true
}

func (f *fakeRows) Scan(dest ...any) error {
	for j, d := range dest {
		reflect.ValueOf(d).Elem().Set(reflect.ValueOf(f.rows[f.i-1][j]))
	}
	return nil
}
func (f *fakeRows) Err() error { return f.err }
func (f *fakeRows) Close() error {
	f.closed++
	return nil
}

func TestReaderBatches(t *testing.T) {
	t.Parallel()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rows := &fakeRows{names: []string{"n", "s"}}
	for i := range 10 {
		var s *string
		if i%3 != 0 {
			s = ptr(fmt.Sprint(i))
		}
		rows.rows = append(rows.rows, []any{uint32(i), s})
	}
	r, err := NewReader(rows, []string{"n", "s"}, []string{"UInt32", "Nullable(String)"}, 4, mem)
	require.NoError(t, err)
	var sizes []int64
	var sum uint64
	nulls := 0
	for r.Next() {
		rec := r.RecordBatch()
		sizes = append(sizes, rec.NumRows())
		for _, v := range rec.Column(0).(*array.Uint32).Values() {
			sum += uint64(v)
		}
		nulls += rec.Column(1).NullN()
	}
	require.NoError(t, r.Err())
	require.Equal(t, []int64{4, 4, 2}, sizes)
	require.Equal(t, uint64(45), sum)
	require.Equal(t, 4, nulls) // 0, 3, 6, 9
	require.Equal(t, int64(10), r.Rows())
	require.False(t, r.Next())
	r.Release()
	require.Equal(t, 1, rows.closed)
}

func TestReaderByteBound(t *testing.T) {
	t.Parallel()
	rows := &fakeRows{names: []string{"s"}}
	for range 10 {
		rows.rows = append(rows.rows, []any{string(make([]byte, 1000))})
	}
	r, err := NewReader(rows, []string{"s"}, []string{"String"}, 0, nil)
	require.NoError(t, err)
	defer r.Release()
	r.SetMaxBatchBytes(2500)
	var sizes []int64
	for r.Next() {
		sizes = append(sizes, r.RecordBatch().NumRows())
	}
	require.NoError(t, r.Err())
	require.Equal(t, []int64{3, 3, 3, 1}, sizes)
}

func TestReaderErrors(t *testing.T) {
	t.Parallel()
	_, err := NewReader(&fakeRows{names: []string{"a"}}, []string{"a", "b"}, []string{"UInt8", "UInt8"}, 0, nil)
	require.ErrorContains(t, err, "returns 1 columns, want 2")
	_, err = NewReader(&fakeRows{names: []string{"a"}}, []string{"b"}, []string{"UInt8"}, 0, nil)
	require.ErrorContains(t, err, `is "a", want "b"`)
	_, err = NewReader(&fakeRows{names: []string{"a"}}, []string{"a"}, []string{"Tuple(UInt8)"}, 0, nil)
	require.ErrorIs(t, err, ErrUnsupportedType)

	boom := errors.New("connection reset")
	rows := &fakeRows{names: []string{"a"}, rows: [][]any{{uint8(1)}}, err: boom}
	r, err := NewReader(rows, []string{"a"}, []string{"UInt8"}, 0, nil)
	require.NoError(t, err)
	defer r.Release()
	require.False(t, r.Next(), "a failed read yields no partial batch")
	require.ErrorIs(t, r.Err(), boom)
}
