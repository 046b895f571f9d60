package fedsql

import (
	"slices"
	"strconv"
	"strings"

	chp "github.com/AfterShip/clickhouse-sql-parser/parser"
)

// prepared is a SELECT whose scope is built: its WITH, FROM and ARRAY
// JOIN printed, its names known.
type prepared struct {
	with      []string // printed "expr AS name"
	withConst []string // the WITH items that read no column (the hub's merge query may use them)
	from      string   // printed FROM clause without the keyword, "" when none
	arrayJoin string   // printed ARRAY JOIN clause, "" when none
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

// fromExpr prints a FROM clause: one source, or sources joined.
func (pr *printer) fromExpr(e chp.Expr, right bool) (string, error) {
	switch n := e.(type) {
	case *chp.JoinTableExpr:
		if n.SampleRatio != nil {
			return "", invalid("SAMPLE is not supported")
		}
		if n.HasFinal {
			return "", invalid("FINAL is not supported")
		}
		return pr.tableExpr(n.Table, right)
	case *chp.JoinExpr:
		return pr.join(n)
	case *chp.TableExpr:
		return pr.tableExpr(n, right)
	}
	return "", invalid("%s in FROM is not supported", describe(e))
}

func (pr *printer) join(j *chp.JoinExpr) (string, error) {
	if len(j.Modifiers) > 0 || j.Constraints != nil {
		return "", invalid("a JOIN needs a table on its left")
	}
	var b strings.Builder
	left, err := pr.fromExpr(j.Left, false)
	if err != nil {
		return "", err
	}
	b.WriteString(left)
	for r := j.Right; r != nil; {
		rj, ok := r.(*chp.JoinExpr)
		if !ok {
			return "", invalid("comma joins are not supported: write JOIN … ON")
		}
		mods, err := pr.joinModifiers(rj.Modifiers)
		if err != nil {
			return "", err
		}
		pr.using = usingKeys(rj.Constraints)
		side, err := pr.fromExpr(rj.Left, true)
		if err != nil {
			return "", err
		}
		b.WriteString(" " + mods + " " + side)
		on, err := pr.joinConstraint(rj.Constraints)
		if err != nil {
			return "", err
		}
		b.WriteString(on)
		r = rj.Right
	}
	pr.using = nil
	pr.a.joins = true
	return b.String(), nil
}

// usingKeys lists the names of a USING clause.
func usingKeys(c chp.Expr) []string {
	var list *chp.ColumnExprList
	switch n := c.(type) {
	case *chp.UsingClause:
		list = n.Using
	case *chp.JoinConstraintClause:
		list = n.Using
	}
	if list == nil {
		return nil
	}
	var out []string
	for _, it := range unwrap(list.Items) {
		if id, ok := it.(*chp.Ident); ok {
			out = append(out, id.Name)
		}
	}
	return out
}

var joinWords = setOf("ALL", "ANY", "INNER", "LEFT", "RIGHT", "FULL", "OUTER", "CROSS", "SEMI", "ANTI", "ASOF")

func (pr *printer) joinModifiers(mods []string) (string, error) {
	var words []string
	for _, m := range mods {
		w := strings.ToUpper(m)
		switch {
		case w == "JOIN":
			continue
		case w == "GLOBAL" || w == "LOCAL":
			return "", invalid("GLOBAL and LOCAL joins are chosen by the federation, not the query")
		case !joinWords[w]:
			return "", invalid("join kind %q is not supported", m)
		}
		words = append(words, w)
	}
	if pr.global {
		words = append([]string{"GLOBAL"}, words...)
	}
	return strings.Join(append(words, "JOIN"), " "), nil
}

func (pr *printer) joinConstraint(c chp.Expr) (string, error) {
	var list *chp.ColumnExprList
	kw := ""
	switch n := c.(type) {
	case nil:
		return "", nil
	case *chp.OnClause:
		list, kw = n.On, " ON "
	case *chp.UsingClause:
		list, kw = n.Using, " USING "
	case *chp.JoinConstraintClause:
		if n.On != nil {
			list, kw = n.On, " ON "
		} else {
			list, kw = n.Using, " USING "
		}
	default:
		return "", invalid("join condition %s is not supported", describe(c))
	}
	if list == nil || len(list.Items) == 0 {
		return "", invalid("a join condition is empty")
	}
	if kw == " ON " {
		if len(list.Items) != 1 {
			return "", invalid("ON takes one condition (join conditions with AND); comma joins are not supported")
		}
		s, err := pr.expr(list.Items[0])
		if err != nil {
			return "", err
		}
		return kw + s, nil
	}
	s, err := pr.items("(", list, ")")
	return kw + s, err
}

func (pr *printer) tableExpr(t *chp.TableExpr, right bool) (string, error) {
	if t.HasFinal {
		return "", invalid("FINAL is not supported")
	}
	e := t.Expr
	var alias string
	if ae, ok := e.(*chp.AliasExpr); ok {
		id, ok := ae.Alias.(*chp.Ident)
		if !ok {
			return "", invalid("a table alias must be a name")
		}
		if err := checkIdent(id.Name); err != nil {
			return "", err
		}
		e, alias = ae.Expr, id.Name
	}
	switch n := e.(type) {
	case *chp.TableIdentifier:
		return pr.table(n, alias, right)
	case *chp.SubQuery:
		return pr.fromSubquery(n, alias, right)
	case *chp.TableFunctionExpr:
		return "", invalid("table functions (%s) are not allowed: read the SynDB tables by name", describe(n.Name))
	}
	return "", invalid("%s in FROM is not supported", describe(e))
}

func (pr *printer) table(n *chp.TableIdentifier, alias string, right bool) (string, error) {
	if n.Database != nil {
		if db := strings.ToLower(n.Database.Name); db == "system" || db == "information_schema" {
			return "", invalid("%s tables are not readable through the federation", db)
		}
		return "", invalid("name the table without a database: %s", n.Table.Name)
	}
	name := n.Table.Name
	if _, ok := pr.a.cat.versions[name]; !ok {
		return "", invalid("unknown table %q (known: %s)", name, pr.a.cat.tableList())
	}
	if alias == "" {
		alias = name
	}
	src := source{table: name}
	if right && pr.global {
		src.joined = len(pr.sc.order) + 1
	}
	if err := pr.sc.addSource(alias, src); err != nil {
		return "", err
	}
	pr.a.tables[name] = true
	return pr.from(name, alias, src.joined, pr.using)
}

func (pr *printer) fromSubquery(n *chp.SubQuery, alias string, right bool) (string, error) {
	child := pr.child()
	s, cols, err := child.selectUnion(n.Select)
	if err != nil {
		return "", err
	}
	name := alias
	if name == "" {
		name = "_subquery" + strconv.Itoa(len(pr.sc.order)+1)
	}
	src := source{cols: cols}
	out := "(" + s + ")"
	if right && pr.global {
		// The node sees a shipped right side under no alias: its columns
		// travel under names of their own.
		if cols == nil {
			return "", invalid("a joined subquery must name its columns (alias every expression)")
		}
		src.joined = len(pr.sc.order) + 1
		names := make([]string, 0, len(cols))
		for c := range cols {
			names = append(names, c)
		}
		slices.Sort(names)
		items := make([]string, 0, len(names))
		for _, c := range names {
			if !identRe.MatchString(c) {
				return "", invalid("a joined subquery's column %q must be a plain name", c)
			}
			items = append(items, quoteIdent(c)+" AS "+joinedName(src.joined, c))
			if slices.Contains(pr.using, c) {
				items = append(items, quoteIdent(c))
			}
		}
		out = "(SELECT " + strings.Join(items, ", ") + " FROM " + out + ")"
	}
	if err := pr.sc.addSource(name, src); err != nil {
		return "", err
	}
	if alias != "" {
		out += " AS " + quoteIdent(alias)
	}
	return out, nil
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
		cols = nil
	}
	return b.String(), cols, nil
}

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
