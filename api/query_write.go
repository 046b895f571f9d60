package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/labstack/echo/v4"
)

// scanner reads rows into fresh values of each column's Go type.
type scanner struct {
	names []string
	types []reflect.Type
	vals  []any
}

func newScanner(rows driver.Rows) *scanner {
	cts := rows.ColumnTypes()
	s := &scanner{names: rows.Columns(), types: make([]reflect.Type, len(cts)), vals: make([]any, len(cts))}
	for i, ct := range cts {
		s.types[i] = ct.ScanType()
	}
	return s
}

func (s *scanner) scan(rows driver.Rows) ([]any, error) {
	for i, t := range s.types {
		s.vals[i] = reflect.New(t).Interface()
	}
	if err := rows.Scan(s.vals...); err != nil {
		return nil, fmt.Errorf("read row: %w", err)
	}
	out := make([]any, len(s.vals))
	for i, v := range s.vals {
		out[i] = deref(reflect.ValueOf(v).Elem())
	}
	return out, nil
}

// deref unwraps Nullable pointers (nil stays nil) and turns the byte
// slices of Array(UInt8) columns into numbers.
func deref(v reflect.Value) any {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if holdsBytes(v.Type()) {
		return numbers(v)
	}
	return v.Interface()
}

// holdsBytes reports a slice of bytes, or of slices that hold them.
func holdsBytes(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && (t.Elem().Kind() == reflect.Uint8 || holdsBytes(t.Elem()))
}

// numbers is v, a slice that holds bytes (an Array(UInt8), or arrays of
// them), with every byte a number: encoding/json writes a []byte as base64,
// where ClickHouse writes an array of numbers.
func numbers(v reflect.Value) any {
	if v.Type().Elem().Kind() == reflect.Uint8 {
		out := make([]uint16, v.Len())
		for i := range out {
			out[i] = uint16(v.Index(i).Uint())
		}
		return out
	}
	out := make([]any, v.Len())
	for i := range out {
		out[i] = numbers(v.Index(i))
	}
	return out
}

// flushEvery is how many rows are buffered before they are pushed to the client.
const flushEvery = 1024

func writeJSONLines(w *echo.Response, rows driver.Rows) (int64, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	sc := newScanner(rows)
	keys := make([][]byte, len(sc.names))
	for i, n := range sc.names {
		keys[i], _ = json.Marshal(n)
	}
	var n int64
	for rows.Next() {
		vals, err := sc.scan(rows)
		if err != nil {
			return n, err
		}
		_ = bw.WriteByte('{')
		for i, v := range vals {
			if i > 0 {
				_ = bw.WriteByte(',')
			}
			_, _ = bw.Write(keys[i])
			_ = bw.WriteByte(':')
			if err := writeJSONValue(bw, v); err != nil {
				return n, err
			}
		}
		if _, err := bw.WriteString("}\n"); err != nil {
			return n, err
		}
		n++
		if n%flushEvery == 0 {
			if err := flush(bw, w); err != nil {
				return n, err
			}
		}
	}
	return n, flush(bw, w)
}

func writeJSONValue(w io.Writer, v any) error {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			v = nil
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			v = nil
		}
	case time.Time:
		v = x.UTC().Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %T: %w", v, err)
	}
	_, err = w.Write(b)
	return err
}

// writeCSV writes rows as CSV, a header of the column names first. Values
// are written as ClickHouse's FORMAT CSV writes them: NULL as \N, a string
// always quoted (so NULL, the empty string and the string \N are three
// different fields), any other value quoted only where it must be.
func writeCSV(w *echo.Response, rows driver.Rows) (int64, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	sc := newScanner(rows)
	var line []byte
	for i, name := range sc.names {
		line = appendCSVField(line, i, name, csvQuoted(name))
	}
	if _, err := bw.Write(append(line, '\n')); err != nil {
		return 0, err
	}
	var n int64
	for rows.Next() {
		vals, err := sc.scan(rows)
		if err != nil {
			return n, err
		}
		line = line[:0]
		for i, v := range vals {
			switch x := v.(type) {
			case nil:
				line = appendCSVField(line, i, csvNull, false)
			case string:
				line = appendCSVField(line, i, x, true)
			default:
				s := csvValue(v)
				line = appendCSVField(line, i, s, s == "" || s == csvNull || csvQuoted(s))
			}
		}
		if _, err := bw.Write(append(line, '\n')); err != nil {
			return n, err
		}
		n++
		if n%flushEvery == 0 {
			if err := flush(bw, w); err != nil {
				return n, err
			}
		}
	}
	return n, flush(bw, w)
}

// csvNull is NULL in CSV, as ClickHouse writes and reads it.
const csvNull = `\N`

// appendCSVField appends the i-th field of a record to line, in double
// quotes (a quote doubled) when quoted.
func appendCSVField(line []byte, i int, s string, quoted bool) []byte {
	if i > 0 {
		line = append(line, ',')
	}
	if !quoted {
		return append(line, s...)
	}
	line = append(line, '"')
	line = append(line, strings.ReplaceAll(s, `"`, `""`)...)
	return append(line, '"')
}

// csvQuoted reports whether s must be quoted to be read back as one field:
// it holds a comma, a quote or a line break, or starts with a space.
func csvQuoted(s string) bool {
	if strings.ContainsAny(s, ",\"\r\n") {
		return true
	}
	r, _ := utf8.DecodeRuneInString(s)
	return s != "" && unicode.IsSpace(r)
}

// csvValue is the text of a value in CSV (csvNull for NULL).
func csvValue(v any) string {
	switch x := v.(type) {
	case nil:
		return csvNull
	case string:
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case fmt.Stringer:
		return x.String()
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice || rv.Kind() == reflect.Map {
		b, _ := json.Marshal(v)
		return string(b)
	}
	return fmt.Sprint(v)
}

func flush(bw *bufio.Writer, w *echo.Response) error {
	if err := bw.Flush(); err != nil {
		return err
	}
	w.Flush()
	return nil
}
