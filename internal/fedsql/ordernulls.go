package fedsql

import (
	"strings"

	chp "github.com/AfterShip/clickhouse-sql-parser/parser"
)

// The parser does not read NULLS FIRST and NULLS LAST after an ORDER BY
// item. Before it reads the query, each is written as a WITH FILL STEP of a
// mark of the compiler's own, which the parser keeps with the item; after,
// the mark is taken off again and the item's direction holds the NULLS
// (unmarkNulls). ClickHouse 18.16 reads ORDER BY x [ASC|DESC] NULLS FIRST.
const (
	nullsFirstMark = internalPrefix + "nulls_first"
	nullsLastMark  = internalPrefix + "nulls_last"
)

// orderDirections are the directions an ORDER BY item may print with.
var orderDirections = setOf("", "ASC", "DESC", "NULLS FIRST", "NULLS LAST", "ASC NULLS FIRST", "ASC NULLS LAST",
	"DESC NULLS FIRST", "DESC NULLS LAST")

// markNulls writes each NULLS FIRST and NULLS LAST of text, outside quotes
// and comments, as WITH FILL STEP and its mark, and counts them. text has
// passed checkLexical: its quotes and comments end.
func markNulls(text string) (string, int) {
	var b strings.Builder
	n, last := 0, 0
	var prev [2]int // the start and end of the word before, once it is NULLS
	prev[0] = -1
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for ; j < len(text); j++ {
				if text[j] == c {
					if j+1 < len(text) && text[j+1] == c {
						j++
						continue
					}
					break
				}
			}
			i, prev[0] = j, -1
		case c == '-' && strings.HasPrefix(text[i:], "--"), c == '#':
			for i < len(text) && text[i] != '\n' {
				i++
			}
			prev[0] = -1
		case c == '/' && strings.HasPrefix(text[i:], "/*"):
			if end := strings.Index(text[i+2:], "*/"); end >= 0 {
				i += end + 3
			} else {
				i = len(text)
			}
			prev[0] = -1
		case isWordChar(c):
			j := i
			for j < len(text) && isWordChar(text[j]) {
				j++
			}
			word := strings.ToUpper(text[i:j])
			switch {
			case prev[0] >= 0 && (word == "FIRST" || word == "LAST") && strings.TrimSpace(text[prev[1]:i]) == "":
				mark := nullsFirstMark
				if word == "LAST" {
					mark = nullsLastMark
				}
				b.WriteString(text[last:prev[0]])
				b.WriteString("WITH FILL STEP " + mark)
				last, prev[0] = j, -1
				n++
			case word == "NULLS" && !isDigit(c):
				prev = [2]int{i, j}
			default:
				prev[0] = -1
			}
			i = j - 1
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
		default:
			prev[0] = -1
		}
	}
	b.WriteString(text[last:])
	return b.String(), n
}

// unmarkNulls takes markNulls' n marks off q's ORDER BY items, giving each
// item its NULLS FIRST or NULLS LAST. A mark anywhere else, or one the
// query wrote itself, is refused.
func unmarkNulls(q *chp.SelectQuery, n int) error {
	found := 0
	for _, e := range chp.FindAll(q, func(e chp.Expr) bool { _, ok := e.(*chp.OrderExpr); return ok }) {
		oe := e.(*chp.OrderExpr)
		if oe.Fill == nil || oe.Fill.From != nil || oe.Fill.To != nil || oe.Fill.Staleness != nil {
			continue
		}
		id, ok := oe.Fill.Step.(*chp.Ident)
		if !ok || id.QuoteType != chp.Unquoted || (id.Name != nullsFirstMark && id.Name != nullsLastMark) {
			continue
		}
		nulls := "NULLS FIRST"
		if id.Name == nullsLastMark {
			nulls = "NULLS LAST"
		}
		oe.Fill = nil
		oe.Direction = chp.OrderDirection(strings.TrimSpace(string(oe.Direction) + " " + nulls))
		found++
	}
	if found != n {
		return invalid("NULLS FIRST and NULLS LAST may follow only an ORDER BY item")
	}
	return nil
}
