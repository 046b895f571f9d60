package fedsql

import (
	"strconv"
	"strings"

	chp "github.com/AfterShip/clickhouse-sql-parser/parser"
)

// setting is a ClickHouse setting a query may choose, and its bounds.
type setting struct {
	min, max int
	// capped settings take at most this option's value (0: max applies).
	cap func(Options) int
}

// safeSettings are the SETTINGS a query may hold: how it runs, never where
// or with whose rights. Everything else is refused, join_use_nulls too:
// an aggregate over the NULLs it makes of a LEFT JOIN's misses
// (max(y.cid) … LEFT JOIN … USING cid) crashes ClickHouse 18.16.
var safeSettings = map[string]setting{
	"max_threads":        {min: 1, max: 16},
	"max_block_size":     {min: 1024, max: 1 << 20},
	"max_execution_time": {min: 1, max: 3600, cap: func(o Options) int { return o.MaxSeconds }},
	"max_rows_to_read":   {min: 1, max: 1 << 62},
}

// checkSettings reads the outermost SETTINGS clause against the safe list.
func checkSettings(q *chp.SelectQuery, opts Options) (map[string]any, error) {
	out := map[string]any{}
	for part := q; part != nil; part = part.UnionAll {
		if part != q && part.Settings != nil {
			return nil, invalid("SETTINGS belongs at the end of the whole query")
		}
	}
	if q.Settings == nil {
		return out, nil
	}
	for _, it := range q.Settings.Items {
		name := strings.ToLower(it.Name.Name)
		s, ok := safeSettings[name]
		if !ok {
			return nil, invalid("setting %s is not allowed (allowed: %s)", it.Name.Name, settingNames())
		}
		lit, ok := it.Expr.(*chp.NumberLiteral)
		if !ok {
			return nil, invalid("setting %s takes a whole number", name)
		}
		v, err := strconv.Atoi(lit.Literal)
		if err != nil {
			return nil, invalid("setting %s takes a whole number, not %s", name, lit.Literal)
		}
		hi := s.max
		if s.cap != nil && s.cap(opts) > 0 {
			hi = min(hi, s.cap(opts))
		}
		if v < s.min || v > hi {
			return nil, invalid("setting %s = %d is out of range [%d, %d]", name, v, s.min, hi)
		}
		out[name] = v
	}
	return out, nil
}

func settingNames() string {
	return "max_block_size, max_execution_time, max_rows_to_read, max_threads"
}
