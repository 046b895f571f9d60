package arrowconv

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/google/uuid"
	"github.com/shopspring/decimal"
)

// TextColumn reads text values (CSV cells) of one ClickHouse column: it
// parses them into the Go values clickhouse-go uses for the type, and
// appends those to an Arrow builder of ArrowType's type.
type TextColumn struct {
	t     *chType
	c     codec
	arrow arrow.DataType
	text  *textParser
}

// textParser reads the cells of one type; the reflect types it needs are
// worked out once, when the column is made, not for every cell.
type textParser struct {
	t     *chType      // the type without Nullable
	ptr   reflect.Type // *T when the type is Nullable(T)
	slice reflect.Type // []E for Array(E)
	elem  *textParser  // reads E for Array(E)
}

func newTextParser(t *chType) *textParser {
	p := &textParser{t: t}
	if t.nullable {
		inner := *t
		inner.nullable = false
		p.t, p.ptr = &inner, reflect.PointerTo(newCodec(&inner).goType())
	}
	if p.t.kind == kindArray {
		p.elem = newTextParser(p.t.elem)
		p.slice = reflect.SliceOf(newCodec(p.t.elem).goType())
	}
	return p
}

// NewTextColumn returns the TextColumn of a ClickHouse type.
func NewTextColumn(chType string) (*TextColumn, error) {
	t, err := parseType(chType)
	if err != nil {
		return nil, err
	}
	at, err := ArrowType(chType)
	if err != nil {
		return nil, err
	}
	return &TextColumn{t: t, c: newCodec(t), arrow: at, text: newTextParser(t)}, nil
}

// ArrowType is the column's Arrow type.
func (tc *TextColumn) ArrowType() arrow.DataType { return tc.arrow }

// Nullable reports whether the column takes NULL (an empty cell).
func (tc *TextColumn) Nullable() bool { return tc.t.nullable }

// Append appends v, from Parse, to b (a builder of ArrowType).
func (tc *TextColumn) Append(b array.Builder, v any) { tc.c.putAny(b, v) }

// ErrNull is returned by Parse for an empty cell of a column that takes no NULL.
var ErrNull = errors.New("a value is required")

// Parse reads s as a value of the column's type. An empty cell is NULL
// for a Nullable column, the empty string for a String one, and an error
// (ErrNull) otherwise. Arrays are JSON arrays.
func (tc *TextColumn) Parse(s string) (any, error) {
	return tc.text.parse(s)
}

func (p *textParser) parse(s string) (any, error) {
	if p.ptr == nil {
		return p.value(s)
	}
	if s == "" {
		return reflect.Zero(p.ptr).Interface(), nil
	}
	v, err := p.value(s)
	if err != nil {
		return nil, err
	}
	ptr := reflect.New(p.ptr.Elem())
	ptr.Elem().Set(reflect.ValueOf(v))
	return ptr.Interface(), nil
}

// value reads s as a value of the type without Nullable.
func (p *textParser) value(s string) (any, error) {
	t := p.t
	if s == "" && t.kind != kindString && t.kind != kindFixedString && t.kind != kindArray {
		return nil, ErrNull
	}
	switch t.kind {
	case kindUUID:
		u, err := uuid.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("not a UUID: %q", clip(s))
		}
		return u, nil
	case kindString, kindEnum:
		return s, nil
	case kindFixedString:
		if len(s) > t.width {
			return nil, fmt.Errorf("%d bytes, at most %d", len(s), t.width)
		}
		return s, nil
	case kindInt8, kindInt16, kindInt32, kindInt64:
		bits := map[kind]int{kindInt8: 8, kindInt16: 16, kindInt32: 32, kindInt64: 64}[t.kind]
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, bits)
		if err != nil {
			return nil, fmt.Errorf("not an Int%d: %q", bits, clip(s))
		}
		switch bits {
		case 8:
			return int8(n), nil
		case 16:
			return int16(n), nil
		case 32:
			return int32(n), nil
		}
		return n, nil
	case kindUInt8, kindUInt16, kindUInt32, kindUInt64:
		bits := map[kind]int{kindUInt8: 8, kindUInt16: 16, kindUInt32: 32, kindUInt64: 64}[t.kind]
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, bits)
		if err != nil {
			return nil, fmt.Errorf("not a UInt%d: %q", bits, clip(s))
		}
		switch bits {
		case 8:
			return uint8(n), nil
		case 16:
			return uint16(n), nil
		case 32:
			return uint32(n), nil
		}
		return n, nil
	case kindFloat32:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 32)
		if err != nil {
			return nil, fmt.Errorf("not a number: %q", clip(s))
		}
		return float32(f), nil
	case kindFloat64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, fmt.Errorf("not a number: %q", clip(s))
		}
		return f, nil
	case kindBool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("not a boolean: %q", clip(s))
		}
		return b, nil
	case kindDate:
		d, err := time.Parse(time.DateOnly, strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("not a date (YYYY-MM-DD): %q", clip(s))
		}
		return d, nil
	case kindDateTime:
		for _, layout := range []string{time.RFC3339, time.DateTime} {
			if d, err := time.Parse(layout, strings.TrimSpace(s)); err == nil {
				return d.UTC(), nil
			}
		}
		return nil, fmt.Errorf("not a date and time (RFC 3339 or YYYY-MM-DD hh:mm:ss): %q", clip(s))
	case kindDecimal:
		d, err := decimal.NewFromString(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("not a decimal: %q", clip(s))
		}
		return d, nil
	case kindArray:
		if s == "" {
			s = "[]"
		}
		var raw []json.RawMessage
		if err := json.Unmarshal([]byte(s), &raw); err != nil {
			return nil, fmt.Errorf("not a JSON array: %q", clip(s))
		}
		out := reflect.MakeSlice(p.slice, 0, len(raw))
		for i, r := range raw {
			var text string
			if err := json.Unmarshal(r, &text); err != nil {
				text = string(r) // numbers and booleans as written
			}
			v, err := p.elem.parse(text)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			out = reflect.Append(out, reflect.ValueOf(v))
		}
		return out.Interface(), nil
	}
	return nil, fmt.Errorf("%w %s", ErrUnsupportedType, t.name)
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
