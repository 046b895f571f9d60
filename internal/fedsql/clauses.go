package fedsql

import (
	"strconv"
	"strings"

	chp "github.com/AfterShip/clickhouse-sql-parser/parser"
)

// tail prints PREWHERE, WHERE, GROUP BY, HAVING, ORDER BY, LIMIT BY and
// LIMIT of a nested SELECT.
func (pr *printer) tail(q *chp.SelectQuery) (string, error) {
	var b strings.Builder
	clause := func(kw string, e chp.Expr) error {
		if e == nil {
			return nil
		}
		s, err := pr.expr(e)
		if err != nil {
			return err
		}
		b.WriteString(" " + kw + " " + s)
		return nil
	}
	if q.Prewhere != nil {
		if err := clause("PREWHERE", q.Prewhere.Expr); err != nil {
			return "", err
		}
	}
	if q.Where != nil {
		if err := clause("WHERE", q.Where.Expr); err != nil {
			return "", err
		}
	}
	if q.GroupBy != nil {
		keys, err := groupKeys(q.GroupBy)
		if err != nil {
			return "", err
		}
		s, err := pr.exprList(keys)
		if err != nil {
			return "", err
		}
		b.WriteString(" GROUP BY " + s)
	}
	if q.Having != nil {
		if err := clause("HAVING", q.Having.Expr); err != nil {
			return "", err
		}
	}
	if q.OrderBy != nil {
		s, err := pr.orderBy(q.OrderBy, nil)
		if err != nil {
			return "", err
		}
		b.WriteString(" ORDER BY " + s)
	}
	if q.LimitBy != nil {
		s, err := pr.limitBy(q.LimitBy, 0)
		if err != nil {
			return "", err
		}
		b.WriteString(s)
	}
	switch {
	case pr.fleetLimit != nil:
		b.WriteString(" LIMIT " + strconv.Itoa(pr.fleetLimit[0]) + ", " + strconv.Itoa(pr.fleetLimit[1]))
	case q.Limit != nil:
		n, off, err := limitOf(q.Limit)
		if err != nil {
			return "", err
		}
		b.WriteString(" LIMIT " + strconv.Itoa(off) + ", " + strconv.Itoa(n))
	}
	return b.String(), nil
}

func groupKeys(g *chp.GroupByClause) ([]chp.Expr, error) {
	switch n := g.Expr.(type) {
	case *chp.ColumnExprList:
		return unwrap(n.Items), nil
	case nil:
		return nil, invalid("GROUP BY needs a key")
	default:
		return []chp.Expr{n}, nil
	}
}

func (pr *printer) exprList(es []chp.Expr) (string, error) {
	parts := make([]string, 0, len(es))
	for _, e := range es {
		s, err := pr.expr(e)
		if err != nil {
			return "", err
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", "), nil
}

// orderBy prints ORDER BY items; name, when set, replaces each item's
// expression by the name the hub's merge query reads it under.
func (pr *printer) orderBy(o *chp.OrderByClause, name func(i int) string) (string, error) {
	if o.Interpolate != nil {
		return "", invalid("INTERPOLATE is not supported")
	}
	parts := make([]string, 0, len(o.Items))
	for i, it := range o.Items {
		oe, ok := it.(*chp.OrderExpr)
		if !ok {
			return "", invalid("ORDER BY item %s is not supported", describe(it))
		}
		if oe.Fill != nil {
			return "", invalid("WITH FILL is not supported")
		}
		if oe.Alias != nil {
			return "", invalid("aliases in ORDER BY are not supported")
		}
		var s string
		if name != nil {
			s = name(i)
		} else {
			var err error
			if s, err = pr.expr(oe.Expr); err != nil {
				return "", err
			}
		}
		if !orderDirections[string(oe.Direction)] {
			return "", invalid("ORDER BY direction %s is not supported", oe.Direction)
		}
		if oe.Direction != chp.OrderDirectionNone {
			s += " " + string(oe.Direction)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", "), nil
}

// limitBy prints LIMIT n BY …; extra raises n (the nodes' share of an
// offset).
func (pr *printer) limitBy(l *chp.LimitByClause, extra int) (string, error) {
	if l.Limit == nil || l.ByExpr == nil {
		return "", invalid("LIMIT … BY needs a count and keys")
	}
	n, off, err := limitOf(l.Limit)
	if err != nil {
		return "", err
	}
	keys, err := pr.exprList(l.ByExpr.Items)
	if err != nil {
		return "", err
	}
	return limitByText(off, n+extra, keys), nil
}

// limitByText prints LIMIT … BY, with an offset only when there is one
// (ClickHouse 18.16 reads LIMIT n BY, not LIMIT m, n BY).
func limitByText(off, n int, keys string) string {
	if off == 0 {
		return " LIMIT " + strconv.Itoa(n) + " BY " + keys
	}
	return " LIMIT " + strconv.Itoa(off) + ", " + strconv.Itoa(n) + " BY " + keys
}

// unwrap takes the expressions out of a list's alias-less items.
func unwrap(items []chp.Expr) []chp.Expr {
	out := make([]chp.Expr, len(items))
	for i, it := range items {
		if ce, ok := it.(*chp.ColumnExpr); ok && ce.Alias == nil {
			it = ce.Expr
		}
		out[i] = it
	}
	return out
}

// limitOf reads a LIMIT clause: whole numbers only.
func limitOf(l *chp.LimitClause) (n, offset int, err error) {
	if n, err = wholeNumber(l.Limit); err != nil {
		return 0, 0, err
	}
	if l.Offset != nil {
		if offset, err = wholeNumber(l.Offset); err != nil {
			return 0, 0, err
		}
	}
	return n, offset, nil
}

func wholeNumber(e chp.Expr) (int, error) {
	lit, ok := e.(*chp.NumberLiteral)
	if !ok {
		return 0, invalid("LIMIT and OFFSET take whole numbers")
	}
	n, err := strconv.Atoi(lit.Literal)
	if err != nil || n < 0 || n > 1<<40 {
		return 0, invalid("LIMIT and OFFSET take whole numbers, not %s", lit.Literal)
	}
	return n, nil
}
