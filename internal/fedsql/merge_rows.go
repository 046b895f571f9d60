package fedsql

import (
	"strconv"
	"strings"

	chp "github.com/AfterShip/clickhouse-sql-parser/parser"
)

// orderAndLimit prints the merge query's ORDER BY, LIMIT BY and LIMIT;
// hidden, when set, names the column each ORDER BY and LIMIT BY expression
// travels in.
func (c *compiler) orderAndLimit(pr *printer, pt *part, hidden func(kind string, i int) string) (string, error) {
	var b strings.Builder
	if pt.q.OrderBy != nil {
		var name func(int) string
		if hidden != nil {
			name = func(i int) string { return hidden("o", i) }
		}
		s, err := pr.orderBy(pt.q.OrderBy, name)
		if err != nil {
			return "", err
		}
		b.WriteString(" ORDER BY " + s)
	}
	if pt.q.LimitBy != nil {
		n, off, err := limitOf(pt.q.LimitBy.Limit)
		if err != nil {
			return "", err
		}
		var keys []string
		for i, e := range pt.limitBy {
			if hidden != nil {
				keys = append(keys, hidden("b", i))
				continue
			}
			s, err := pr.expr(e)
			if err != nil {
				return "", err
			}
			keys = append(keys, s)
		}
		b.WriteString(limitByText(off, n, strings.Join(keys, ", ")))
	}
	b.WriteString(" LIMIT " + strconv.Itoa(pt.offset) + ", " + strconv.Itoa(pt.limit))
	return b.String(), nil
}

// hiddenName is the column a plain query's ORDER BY (o) or LIMIT BY (b)
// expression travels in from the nodes.
func hiddenName(kind string, i int) string { return internalPrefix + kind + strconv.Itoa(i+1) }

// isNode reports a select item that is _node itself.
func isNode(it outItem) bool {
	id, ok := it.expr.(*chp.Ident)
	return ok && id.Name == NodeColumn && it.alias == ""
}

func itemName(pt *part, i int) string {
	if isNode(pt.items[i]) {
		return NodeColumn
	}
	if a := pt.items[i].alias; a != "" {
		return quoteIdent(a)
	}
	return internalPrefix + "c" + strconv.Itoa(i+1)
}

// addsNode reports whether a plain part's rows carry _node first.
func (pt *part) addsNode() bool { return !pt.q.HasDistinct && !pt.selectsNode }

// rowsBranch is what node t sends of a plain query: its rows, with their
// sort keys, ordered and cut to the rows the hub can use.
func (c *compiler) rowsBranch(pt *part, t Target) (string, error) {
	pr := c.nodePrinter(t, newAnalysis(c.p.cat))
	pq, err := pr.prepare(pt.q)
	if err != nil {
		return "", err
	}
	var items []string
	if !pt.selectsNode && (!pt.q.HasDistinct || c.p.usesNode) {
		items = append(items, nodeLiteral(t))
	}
	for i, it := range pt.items {
		if isNode(it) {
			// The node's name is this column: one constant, defined once.
			items = append(items, nodeLiteral(t))
			continue
		}
		s, err := pr.expr(it.expr)
		if err != nil {
			return "", err
		}
		items = append(items, c.materialized(pr, pt, it.expr, s)+" AS "+itemName(pt, i))
	}
	if !pt.q.HasDistinct {
		for i, e := range pt.order {
			s, err := pr.expr(e)
			if err != nil {
				return "", err
			}
			items = append(items, c.materialized(pr, pt, e, s)+" AS "+hiddenName("o", i))
		}
		for i, e := range pt.limitBy {
			s, err := pr.expr(e)
			if err != nil {
				return "", err
			}
			items = append(items, c.materialized(pr, pt, e, s)+" AS "+hiddenName("b", i))
		}
	}
	body, err := c.body(pr, pq, pt.q)
	if err != nil {
		return "", err
	}
	out := head(pq.with, pt.q.HasDistinct) + strings.Join(items, ", ") + body
	if pt.q.OrderBy != nil {
		s, err := pr.orderBy(pt.q.OrderBy, nil)
		if err != nil {
			return "", err
		}
		out += " ORDER BY " + s
	}
	if pt.q.LimitBy != nil {
		s, err := pr.limitBy(pt.q.LimitBy, 0)
		if err != nil {
			return "", err
		}
		out += s
	}
	return out + " LIMIT 0, " + strconv.Itoa(pt.offset+pt.limit), nil
}

// materialized is s, the printed e (read by pr), as a column of the node's
// rows: a constant (e reads no column; pt.consts are the WITH names that
// are constants) is materialised. ClickHouse takes a constant of every
// branch of the hub's UNION ALL for a constant of the union, and then
// refuses the column each node's remote() sends, which is not one. A
// constant that may be NULL (of a Nullable type, as the compiler tells
// them: c.nullable) is read out of a one-element array at a materialised
// index instead: materialize(NULL) is a constant NULL on 18.16 (as is every
// function of a constant NULL), and [c][materialize(1)] is c, of c's type,
// in a column that is not constant.
func (c *compiler) materialized(pr *printer, pt *part, e chp.Expr, s string) string {
	if !constant(e, pt.consts) {
		return s
	}
	if c.nullable(pr.sc, e) {
		return "[" + s + "][materialize(1)]"
	}
	return "materialize(" + s + ")"
}

// withConsts are the WITH names of a SELECT that name constants (constant).
type withConsts map[string]struct{}

// constantsOf finds the WITH names of q that name constants: names of
// literals, of functions of them, and of such names.
func constantsOf(q *chp.SelectQuery) withConsts {
	consts := withConsts{}
	if q.With == nil {
		return consts
	}
	for grew := true; grew; {
		grew = false
		for _, cte := range q.With.CTEs {
			name, ok := cte.Alias.(*chp.Ident)
			if !ok {
				continue
			}
			if _, known := consts[name.Name]; known || !constant(cte.Expr, consts) {
				continue
			}
			consts[name.Name], grew = struct{}{}, true
		}
	}
	return consts
}

// constant reports whether e reads nothing of a row: no column, alias or
// subquery, only literals, the WITH names of consts and the functions of
// them.
func constant(e chp.Expr, consts withConsts) bool {
	// Names that are not read: functions' and a CAST's type's.
	calls := map[*chp.Ident]bool{}
	for _, f := range chp.FindAll(e, func(n chp.Expr) bool { _, ok := n.(*chp.FunctionExpr); return ok }) {
		calls[f.(*chp.FunctionExpr).Name] = true
	}
	for _, c := range chp.FindAll(e, func(n chp.Expr) bool { _, ok := n.(*chp.CastExpr); return ok }) {
		for _, id := range chp.FindAll(c.(*chp.CastExpr).AsType, func(n chp.Expr) bool { _, ok := n.(*chp.Ident); return ok }) {
			calls[id.(*chp.Ident)] = true
		}
	}
	_, reads := chp.Find(e, func(n chp.Expr) bool {
		switch n := n.(type) {
		case *chp.Ident:
			_, named := consts[n.Name]
			return !calls[n] && !isNull(n) && !named
		case *chp.Path, *chp.NestedIdentifier, *chp.SubQuery:
			return true
		}
		return false
	})
	return !reads
}

// rowsMerge is the hub's query over the nodes' rows: the same order and
// limits again, over the columns the nodes sent.
func (c *compiler) rowsMerge(pt *part) (string, error) {
	var items []string
	if pt.addsNode() {
		items = append(items, NodeColumn)
	}
	first := map[string]string{}
	for i, it := range pt.items {
		ref := itemName(pt, i)
		if it.alias != "" || isNode(it) {
			items = append(items, ref)
			continue
		}
		// The same expression twice is one column under one name.
		if r, ok := first[it.text]; ok {
			ref = r
		} else {
			first[it.text] = ref
		}
		items = append(items, ref+" AS "+quoteName(it.text))
	}
	out := head(nil, pt.q.HasDistinct) + strings.Join(items, ", ") + " FROM " + branchesMark
	hidden := hiddenName
	if pt.q.HasDistinct {
		var err error
		if hidden, err = distinctOrder(pt); err != nil {
			return "", err
		}
	}
	rest, err := c.orderAndLimit(&printer{sc: newScope()}, pt, hidden)
	if err != nil {
		return "", err
	}
	return out + rest, nil
}

// distinctOrder maps a DISTINCT query's ORDER BY and LIMIT BY to its
// selected columns: nothing else may travel with distinct rows.
func distinctOrder(pt *part) (func(string, int) string, error) {
	find := func(e chp.Expr) (string, error) {
		text, err := textOf(e)
		if err != nil {
			return "", err
		}
		for i, it := range pt.items {
			if it.text == text || (it.alias != "" && quoteIdent(it.alias) == text) {
				return itemName(pt, i), nil
			}
		}
		return "", invalid("with DISTINCT, ORDER BY and LIMIT BY only the selected columns (%s)", text)
	}
	names := map[string]string{}
	for kind, es := range map[string][]chp.Expr{"o": pt.order, "b": pt.limitBy} {
		for i, e := range es {
			n, err := find(e)
			if err != nil {
				return nil, err
			}
			names[kind+strconv.Itoa(i)] = n
		}
	}
	return func(kind string, i int) string { return names[kind+strconv.Itoa(i)] }, nil
}
