// Package arrowconv converts between ClickHouse columns, as clickhouse-go/v2
// scans and appends them over the native protocol, and Apache Arrow.
//
// It is pure conversion, with no network of its own: a Reader turns the rows
// of a running query into Arrow record batches, one bounded batch at a time;
// an Inserter appends Arrow records to a prepared INSERT with an explicit
// column list (the only insert path ClickHouse 18.16 accepts from this
// driver). Both work on 18.16 and on current ClickHouse, which is why
// neither relies on ClickHouse's own Arrow format.
//
// Type mapping (ArrowType):
//
//	UUID                          arrow.uuid (canonical extension, FixedSizeBinary(16) storage)
//	String, Enum8(…), Enum16(…)   String (UTF-8; ClickHouse does not check that)
//	FixedString(N)                FixedSizeBinary(N)
//	Int8…Int64, UInt8…UInt64      Int8…Int64, Uint8…Uint64
//	Float32, Float64              Float32, Float64
//	Bool                          Boolean
//	Date, Date32                  Date32 (days since the epoch)
//	DateTime, DateTime('tz')      Timestamp(s, tz), tz "UTC" when the column has none
//	Decimal(P,S), DecimalNN(S)    Decimal128(P,S), P ≤ 38
//	Array(T)                      List(T), the element nullable when T is Nullable
//	Nullable(T)                   T in a nullable field
//	LowCardinality(T)             T
//
// UUIDs use the canonical arrow.uuid extension type rather than a string:
// 16 bytes instead of 36, and any Arrow reader that does not know the
// extension still sees plain FixedSizeBinary(16) in RFC 4122 byte order.
package arrowconv

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/extensions"
)

// ErrUnsupportedType is wrapped by every error about a ClickHouse type this
// package cannot map.
var ErrUnsupportedType = errors.New("unsupported ClickHouse type")

// MetadataType is the field metadata key under which Schema records each
// column's ClickHouse type.
const MetadataType = "clickhouse.type"

// kind is a ClickHouse base type.
type kind int

const (
	kindUUID kind = iota
	kindString
	kindEnum
	kindFixedString
	kindInt8
	kindInt16
	kindInt32
	kindInt64
	kindUInt8
	kindUInt16
	kindUInt32
	kindUInt64
	kindFloat32
	kindFloat64
	kindBool
	kindDate
	kindDateTime
	kindDecimal
	kindArray
)

var simpleKinds = map[string]kind{
	"UUID": kindUUID, "String": kindString,
	"Int8": kindInt8, "Int16": kindInt16, "Int32": kindInt32, "Int64": kindInt64,
	"UInt8": kindUInt8, "UInt16": kindUInt16, "UInt32": kindUInt32, "UInt64": kindUInt64,
	"Float32": kindFloat32, "Float64": kindFloat64, "Bool": kindBool, "Boolean": kindBool,
	"Date": kindDate, "Date32": kindDate, "DateTime": kindDateTime,
}

// chType is a parsed ClickHouse type.
type chType struct {
	name     string // as ClickHouse spells it
	kind     kind
	nullable bool
	elem     *chType // Array
	width    int     // FixedString(N)
	prec     int32   // Decimal
	scale    int32   // Decimal
	tz       string  // DateTime('tz')
}

func unsupported(t string) error { return fmt.Errorf("%w %s", ErrUnsupportedType, t) }

// parseType parses a ClickHouse type name as system.columns spells it.
func parseType(s string) (*chType, error) {
	s = strings.TrimSpace(s)
	name, args, hasArgs := splitCall(s)
	t := &chType{name: s}
	switch {
	case !hasArgs:
		k, ok := simpleKinds[s]
		if !ok {
			return nil, unsupported(s)
		}
		t.kind = k
	case name == "Nullable" || name == "LowCardinality":
		inner, err := parseType(args)
		if err != nil {
			return nil, fmt.Errorf("%w in %s", err, s)
		}
		if name == "Nullable" {
			if inner.nullable || inner.kind == kindArray {
				return nil, unsupported(s)
			}
			inner.nullable = true
		}
		inner.name = s
		return inner, nil
	case name == "Array":
		elem, err := parseType(args)
		if err != nil {
			return nil, fmt.Errorf("%w in %s", err, s)
		}
		t.kind, t.elem = kindArray, elem
	case name == "Enum8" || name == "Enum16":
		t.kind = kindEnum
	case name == "FixedString":
		n, err := strconv.Atoi(strings.TrimSpace(args))
		if err != nil || n < 1 {
			return nil, unsupported(s)
		}
		t.kind, t.width = kindFixedString, n
	case name == "DateTime":
		tz, err := strconv.Unquote(strings.ReplaceAll(strings.TrimSpace(args), "'", `"`))
		if err != nil || tz == "" {
			return nil, unsupported(s)
		}
		t.kind, t.tz = kindDateTime, tz
	case name == "Decimal":
		p, sc, ok := strings.Cut(args, ",")
		prec, err1 := strconv.Atoi(strings.TrimSpace(p))
		scale, err2 := strconv.Atoi(strings.TrimSpace(sc))
		if !ok || err1 != nil || err2 != nil {
			return nil, unsupported(s)
		}
		t.kind, t.prec, t.scale = kindDecimal, int32(prec), int32(scale)
	case name == "Decimal32" || name == "Decimal64" || name == "Decimal128":
		scale, err := strconv.Atoi(strings.TrimSpace(args))
		if err != nil {
			return nil, unsupported(s)
		}
		t.kind, t.scale = kindDecimal, int32(scale)
		t.prec = map[string]int32{"Decimal32": 9, "Decimal64": 18, "Decimal128": 38}[name]
	default:
		return nil, unsupported(s)
	}
	if t.kind == kindDecimal && (t.prec < 1 || t.prec > 38 || t.scale < 0 || t.scale > t.prec) {
		return nil, unsupported(s)
	}
	return t, nil
}

// splitCall splits "Name(args)" into its name and arguments.
func splitCall(s string) (name, args string, ok bool) {
	open := strings.IndexByte(s, '(')
	if open < 0 || !strings.HasSuffix(s, ")") {
		return s, "", false
	}
	return strings.TrimSpace(s[:open]), s[open+1 : len(s)-1], true
}

// arrowType is t's Arrow type (nullability belongs to the field).
func (t *chType) arrowType() arrow.DataType {
	switch t.kind {
	case kindUUID:
		return extensions.NewUUIDType()
	case kindString, kindEnum:
		return arrow.BinaryTypes.String
	case kindFixedString:
		return &arrow.FixedSizeBinaryType{ByteWidth: t.width}
	case kindInt8:
		return arrow.PrimitiveTypes.Int8
	case kindInt16:
		return arrow.PrimitiveTypes.Int16
	case kindInt32:
		return arrow.PrimitiveTypes.Int32
	case kindInt64:
		return arrow.PrimitiveTypes.Int64
	case kindUInt8:
		return arrow.PrimitiveTypes.Uint8
	case kindUInt16:
		return arrow.PrimitiveTypes.Uint16
	case kindUInt32:
		return arrow.PrimitiveTypes.Uint32
	case kindUInt64:
		return arrow.PrimitiveTypes.Uint64
	case kindFloat32:
		return arrow.PrimitiveTypes.Float32
	case kindFloat64:
		return arrow.PrimitiveTypes.Float64
	case kindBool:
		return arrow.FixedWidthTypes.Boolean
	case kindDate:
		return arrow.FixedWidthTypes.Date32
	case kindDateTime:
		tz := t.tz
		if tz == "" {
			tz = "UTC"
		}
		return &arrow.TimestampType{Unit: arrow.Second, TimeZone: tz}
	case kindDecimal:
		return &arrow.Decimal128Type{Precision: t.prec, Scale: t.scale}
	case kindArray:
		return arrow.ListOfField(arrow.Field{Name: "item", Type: t.elem.arrowType(), Nullable: t.elem.nullable})
	}
	panic(fmt.Sprintf("arrowconv: kind %d has no Arrow type", t.kind))
}

// ArrowType returns the Arrow type of a ClickHouse column type. For
// Nullable(T) it is T's type: nullability is a property of the field (see
// Schema). An unknown type is an error naming it, wrapping
// ErrUnsupportedType.
func ArrowType(chType string) (arrow.DataType, error) {
	t, err := parseType(chType)
	if err != nil {
		return nil, err
	}
	return t.arrowType(), nil
}

// Schema returns the Arrow schema of columns named names with ClickHouse
// types chTypes: one field per column, nullable for Nullable columns, each
// carrying its ClickHouse type in the field metadata under MetadataType.
func Schema(names, chTypes []string) (*arrow.Schema, error) {
	if len(names) != len(chTypes) {
		return nil, fmt.Errorf("%d column names for %d types", len(names), len(chTypes))
	}
	fields := make([]arrow.Field, len(names))
	for i, n := range names {
		t, err := parseType(chTypes[i])
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", n, err)
		}
		fields[i] = field(n, t)
	}
	return arrow.NewSchema(fields, nil), nil
}

func field(name string, t *chType) arrow.Field {
	return arrow.Field{Name: name, Type: t.arrowType(), Nullable: t.nullable,
		Metadata: arrow.NewMetadata([]string{MetadataType}, []string{t.name})}
}
