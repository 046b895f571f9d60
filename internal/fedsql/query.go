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
			pr.sc.define(name.Name, cte.Expr, false)
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
			pr.sc.define(it.Alias.Name, it.Expr, false)
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
			pr.sc.define(ce.Alias.Name, ce.Expr, true)
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

// selectUnion prints a nested SELECT or UNION ALL of SELECTs, and what a
// FROM reading it knows of its columns: their names (unnamedColumn among
// them when one has none), and which are Nullable. A column of a UNION ALL
// is named by its first SELECT and is Nullable where any SELECT's column
// at its place is, as ClickHouse types it.
func (pr *printer) selectUnion(q *chp.SelectQuery) (string, source, error) {
	var parts []string
	var first outputs
	for part := q; part != nil; part = part.UnionAll {
		p := pr
		if part != q {
			p = pr.child()
		}
		s, out, err := p.nested(part)
		if err != nil {
			return "", source{}, err
		}
		if part == q {
			first = out
		} else {
			for i := range min(len(first.nullable), len(out.nullable)) {
				first.nullable[i].top = first.nullable[i].top || out.nullable[i].top
				first.nullable[i].inner = first.nullable[i].inner || out.nullable[i].inner
			}
		}
		parts = append(parts, s)
	}
	src := source{cols: map[string]bool{}, nullable: map[string]nullness{}}
	for i, n := range first.names {
		src.cols[n] = true
		if n != unnamedColumn {
			src.nullable[n] = first.nullable[i]
		}
	}
	return strings.Join(parts, " UNION ALL "), src, nil
}

// outputs are a nested SELECT's columns, by place: each one's name
// (unnamedColumn when ClickHouse names it from its expression) and
// nullness.
type outputs struct {
	names    []string
	nullable []nullness
}

// nested prints one nested SELECT whole.
func (pr *printer) nested(q *chp.SelectQuery) (string, outputs, error) {
	pq, err := pr.prepare(q)
	if err != nil {
		return "", outputs{}, err
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
	var out outputs
	var cat Catalog
	if pr.a != nil {
		cat = pr.a.cat
	}
	ty := typer{cat, pr.sc}
	for i, it := range q.SelectItems {
		if i > 0 {
			b.WriteString(", ")
		}
		names, nullable, s, err := pr.selectItem(it, ty)
		if err != nil {
			return "", outputs{}, err
		}
		b.WriteString(s)
		out.names = append(out.names, names...)
		out.nullable = append(out.nullable, nullable...)
	}
	if pq.from != "" {
		b.WriteString(" FROM " + pq.from)
	}
	if pq.arrayJoin != "" {
		b.WriteString(" " + pq.arrayJoin)
	}
	rest, err := pr.tail(q)
	if err != nil {
		return "", outputs{}, err
	}
	b.WriteString(rest)
	return b.String(), out, nil
}

// unnamedColumn marks a subquery's output that holds a column without a
// name (an expression without an alias).
const unnamedColumn = ""

// selectItem prints one item of a nested select list, the names it gives
// its output (unnamedColumn when ClickHouse names it from the expression:
// a join cannot rename it) and the nullness of each.
func (pr *printer) selectItem(it *chp.SelectItem, ty typer) ([]string, []nullness, string, error) {
	if cols, text, ok, err := pr.star(it.Expr); ok || err != nil {
		if err != nil {
			return nil, nil, "", err
		}
		alias := ""
		if n, ok := it.Expr.(*chp.NestedIdentifier); ok {
			alias = n.Ident.Name
		} else {
			alias = pr.sc.order[0]
		}
		nullable := make([]nullness, len(cols))
		for i, c := range cols {
			nullable[i] = ty.qualified(alias, c)
		}
		return cols, nullable, text, nil
	}
	s, err := pr.expr(it.Expr)
	if err != nil {
		return nil, nil, "", err
	}
	nullable := []nullness{ty.nullness(it.Expr)}
	if it.Alias != nil {
		return []string{it.Alias.Name}, nullable, s + " AS " + quoteIdent(it.Alias.Name), nil
	}
	switch n := it.Expr.(type) {
	case *chp.Ident:
		return []string{n.Name}, nullable, s, nil
	case *chp.Path:
		return []string{n.Fields[len(n.Fields)-1].Name}, nullable, s, nil
	case *chp.NestedIdentifier:
		if n.DotIdent != nil {
			return []string{n.DotIdent.Name}, nullable, s, nil
		}
	}
	return []string{unnamedColumn}, nullable, s, nil
}
