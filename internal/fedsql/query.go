package fedsql

import (
	"strings"

	chp "github.com/AfterShip/clickhouse-sql-parser/parser"
)

// prepared is a SELECT whose scope is built: its WITH, FROM and ARRAY
// JOIN printed, its names known.
type prepared struct {
	with       []string // printed "expr AS name"
	withConst  []string // the WITH items that read no column (the hub's merge query may use them)
	constNames []string // the names withConst defines
	from       string   // printed FROM clause without the keyword, "" when none
	arrayJoin  string   // printed ARRAY JOIN clause, "" when none
}

// refuseClauses names the clauses no federated SELECT may hold.
func refuseClauses(q *chp.SelectQuery) error {
	switch {
	case q.Top != nil:
		return invalid("TOP is not supported: use LIMIT")
	case q.DistinctOn != nil:
		return invalid("DISTINCT ON is not supported")
	case q.Window != nil:
		return invalid("window functions are not supported")
	case q.WithTotal:
		return invalid("WITH TOTALS is not supported")
	case q.Format != nil:
		return invalid("FORMAT is not allowed: the API chooses the format (json, csv or arrow)")
	case q.UnionDistinct != nil:
		return invalid("UNION DISTINCT is not supported: use UNION ALL")
	case q.Except != nil:
		return invalid("EXCEPT is not supported")
	}
	if g := q.GroupBy; g != nil && (g.WithCube || g.WithRollup || g.WithTotals || g.AggregateType != "") {
		return invalid("GROUP BY %s is not supported", strings.TrimSpace(g.AggregateType+" WITH CUBE/ROLLUP/TOTALS"))
	}
	for _, it := range q.SelectItems {
		if len(it.Modifiers) > 0 {
			return invalid("select item modifiers (EXCEPT, REPLACE, APPLY) are not supported")
		}
	}
	return nil
}

// prepare checks q's clauses and builds its scope: FROM first (its
// sources), then the names WITH, the select list and ARRAY JOIN define.
func (pr *printer) prepare(q *chp.SelectQuery) (*prepared, error) {
	if err := refuseClauses(q); err != nil {
		return nil, err
	}
	if !pr.top && q.Settings != nil {
		return nil, invalid("SETTINGS belongs to the outermost query")
	}
	out := &prepared{}
	if q.With != nil {
		for _, cte := range q.With.CTEs {
			if _, ok := cte.Alias.(*chp.Ident); !ok {
				return nil, invalid("WITH name AS (subquery) is not supported: use a subquery in FROM, or WITH (SELECT …) AS name")
			}
		}
	}
	if q.From != nil {
		s, err := pr.fromExpr(q.From.Expr, false)
		if err != nil {
			return nil, err
		}
		out.from = s
	}
	if q.With != nil {
		for _, cte := range q.With.CTEs {
			name, ok := cte.Alias.(*chp.Ident)
			if !ok {
				return nil, invalid("WITH name AS (subquery) is not supported: use a subquery in FROM, or WITH (SELECT …) AS name")
			}
			if err := checkIdent(name.Name); err != nil {
				return nil, err
			}
			pr.sc.names[name.Name] = true
		}
	}
	for _, it := range q.SelectItems {
		if it.Alias != nil {
			if err := checkIdent(it.Alias.Name); err != nil {
				return nil, err
			}
			if it.Alias.Name == NodeColumn {
				return nil, invalid("%s names the node a row came from: choose another alias", NodeColumn)
			}
			pr.sc.names[it.Alias.Name] = true
		}
	}
	if q.ArrayJoin != nil {
		s, err := pr.arrayJoin(q.ArrayJoin)
		if err != nil {
			return nil, err
		}
		out.arrayJoin = s
	}
	if q.With != nil {
		for _, cte := range q.With.CTEs {
			name := cte.Alias.(*chp.Ident).Name
			s, err := pr.expr(cte.Expr)
			if err != nil {
				return nil, err
			}
			item := s + " AS " + quoteIdent(name)
			out.with = append(out.with, item)
			if !readsColumns(cte.Expr) {
				out.withConst = append(out.withConst, item)
				out.constNames = append(out.constNames, name)
			}
		}
	}
	return out, nil
}

// readsColumns reports whether e names anything: a column, an alias.
func readsColumns(e chp.Expr) bool {
	_, found := chp.Find(e, func(n chp.Expr) bool {
		switch n.(type) {
		case *chp.Ident, *chp.Path, *chp.NestedIdentifier, *chp.SubQuery:
			return true
		}
		return false
	})
	return found
}

func (pr *printer) arrayJoin(aj *chp.ArrayJoinClause) (string, error) {
	kind := strings.ToUpper(strings.TrimSpace(aj.Type))
	if kind != "" && kind != "LEFT" && kind != "INNER" {
		return "", invalid("%s ARRAY JOIN is not supported", kind)
	}
	list, ok := aj.Expr.(*chp.ColumnExprList)
	if !ok {
		return "", invalid("ARRAY JOIN takes a list of array expressions")
	}
	for _, it := range list.Items {
		if ce, ok := it.(*chp.ColumnExpr); ok && ce.Alias != nil {
			if err := checkIdent(ce.Alias.Name); err != nil {
				return "", err
			}
			pr.sc.names[ce.Alias.Name] = true
		}
	}
	parts := make([]string, 0, len(list.Items))
	for _, it := range list.Items {
		var alias *chp.Ident
		e := it
		if ce, ok := it.(*chp.ColumnExpr); ok {
			e, alias = ce.Expr, ce.Alias
		}
		s, err := pr.expr(e)
		if err != nil {
			return "", err
		}
		if alias != nil {
			s += " AS " + quoteIdent(alias.Name)
		}
		parts = append(parts, s)
	}
	return strings.TrimSpace(kind+" ARRAY JOIN ") + " " + strings.Join(parts, ", "), nil
}

// child is a printer for a nested SELECT: the same target and checks, a
// scope of its own, no merge rewrite.
func (pr *printer) child() *printer {
	return &printer{a: pr.a, sc: newScope(), from: pr.from, global: pr.global, depth: pr.depth}
}

// subquery prints a nested SELECT (IN, a scalar subquery).
func (pr *printer) subquery(q *chp.SelectQuery) (string, error) {
	leave, err := pr.enter()
	if err != nil {
		return "", err
	}
	defer leave()
	s, _, err := pr.child().selectUnion(q)
	return s, err
}

// selectUnion prints a nested SELECT or UNION ALL of SELECTs, and the
// names of its output columns when every one is known (nil otherwise).
func (pr *printer) selectUnion(q *chp.SelectQuery) (string, map[string]bool, error) {
	var parts []string
	var cols map[string]bool
	for part := q; part != nil; part = part.UnionAll {
		p := pr
		if part != q {
			p = pr.child()
		}
		s, c, err := p.nested(part)
		if err != nil {
			return "", nil, err
		}
		if part == q {
			cols = c
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " UNION ALL "), cols, nil
}

// nested prints one nested SELECT whole.
func (pr *printer) nested(q *chp.SelectQuery) (string, map[string]bool, error) {
	pq, err := pr.prepare(q)
	if err != nil {
		return "", nil, err
	}
	var b strings.Builder
	if len(pq.with) > 0 {
		b.WriteString("WITH " + strings.Join(pq.with, ", ") + " ")
	}
	b.WriteString("SELECT ")
	if q.HasDistinct {
		b.WriteString("DISTINCT ")
	}
	if pr.prependNode {
		b.WriteString(NodeColumn + ", ")
	}
	cols := map[string]bool{}
	known := true
	for i, it := range q.SelectItems {
		if i > 0 {
			b.WriteString(", ")
		}
		names, s, err := pr.selectItem(it)
		if err != nil {
			return "", nil, err
		}
		b.WriteString(s)
		if names == nil {
			known = false
		}
		for _, n := range names {
			cols[n] = true
		}
	}
	if pq.from != "" {
		b.WriteString(" FROM " + pq.from)
	}
	if pq.arrayJoin != "" {
		b.WriteString(" " + pq.arrayJoin)
	}
	rest, err := pr.tail(q)
	if err != nil {
		return "", nil, err
	}
	b.WriteString(rest)
	if !known {
		// Some column has no name to read it by: a join cannot rename it.
		cols[unnamedColumn] = true
	}
	return b.String(), cols, nil
}

// unnamedColumn marks a subquery's output that holds a column without a
// name (an expression without an alias).
const unnamedColumn = ""

// selectItem prints one item of a nested select list and the names it
// gives its output (nil when ClickHouse names it from the expression).
func (pr *printer) selectItem(it *chp.SelectItem) ([]string, string, error) {
	if cols, text, ok, err := pr.star(it.Expr); ok || err != nil {
		return cols, text, err
	}
	s, err := pr.expr(it.Expr)
	if err != nil {
		return nil, "", err
	}
	if it.Alias != nil {
		return []string{it.Alias.Name}, s + " AS " + quoteIdent(it.Alias.Name), nil
	}
	switch n := it.Expr.(type) {
	case *chp.Ident:
		return []string{n.Name}, s, nil
	case *chp.Path:
		return []string{n.Fields[len(n.Fields)-1].Name}, s, nil
	case *chp.NestedIdentifier:
		if n.DotIdent != nil {
			return []string{n.DotIdent.Name}, s, nil
		}
	}
	return nil, s, nil
}
