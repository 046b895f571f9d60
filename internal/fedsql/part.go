package fedsql

import (
	"strconv"
	"strings"

	chp "github.com/AfterShip/clickhouse-sql-parser/parser"
)

// part is one SELECT of the query's UNION ALL, as the compiler splits it
// between the nodes and the hub.
type part struct {
	q           *chp.SelectQuery
	aggregate   bool
	keys        []groupKey
	aggs        []aggregateCall
	items       []outItem
	order       []chp.Expr // ORDER BY expressions
	limitBy     []chp.Expr // LIMIT … BY keys
	limit       int
	offset      int
	truncated   bool
	capped      bool // the row limit is the hub's cap, not the user's LIMIT
	selectsNode bool // _node is a bare item of the select list
	// withConst are the WITH items that read no column: the hub's merge
	// query holds them too.
	withConst  []string
	constNames []string
	// consts are the WITH names that name constants: a node sends a
	// select item, sort key or group key of them materialised.
	consts withConsts
}

// groupKey is a GROUP BY key and the column each node's answer carries it in.
type groupKey struct {
	expr chp.Expr
	text string
	name string
}

// aggregateCall is an aggregate of the outer SELECT: each node computes it
// to its -State under name, the hub merges it with -Merge.
type aggregateCall struct {
	c    call
	text string
	name string
	// nonNull, when set, names the count of the rows whose Nullable
	// arguments are all set (nullCount): the hub's answer is NULL where it
	// is 0, as ClickHouse's own is.
	nonNull string
}

// outItem is a column of the answer.
type outItem struct {
	expr  chp.Expr
	alias string // the user's alias, or ""
	text  string // the expression as printed: the column's name without an alias
}

// textOf prints e without resolving its names: the key by which the
// compiler matches an expression of the hub's merge query to a node's
// group key or aggregate.
func textOf(e chp.Expr) (string, error) {
	if _, sub := chp.Find(e, func(n chp.Expr) bool { _, ok := n.(*chp.SubQuery); return ok }); sub {
		return "", invalid("a subquery is matched by no group key")
	}
	pr := &printer{sc: newScope(), from: placeholderSource}
	return pr.expr(e)
}

// placeholderSource prints a table where only the query's shape matters.
func placeholderSource(_, alias string, _ int, _ []string) (string, error) {
	return quoteIdent(alias), nil
}

// analyse checks one outer SELECT and splits it into what the nodes compute
// and what the hub merges.
func analyse(a *analysis, q *chp.SelectQuery, maxRows int) (*part, error) {
	pr := &printer{a: a, sc: newScope(), top: true, from: placeholderSource}
	pq, err := pr.prepare(q)
	if err != nil {
		return nil, err
	}
	pt := &part{q: q, withConst: pq.withConst, constNames: pq.constNames, consts: constantsOf(q)}
	byText := map[string]int{}
	pr.sub = func(e chp.Expr) (string, bool, error) {
		f, ok := e.(*chp.FunctionExpr)
		if !ok || !isAggregate(strings.ToLower(f.Name.Name)) || pr.inAggregate {
			return "", false, nil
		}
		s, err := pr.function(f)
		if err != nil {
			return "", true, err
		}
		if _, seen := byText[s]; !seen {
			byText[s] = len(pt.aggs)
			pt.aggs = append(pt.aggs, aggregateCall{c: readCall(f), text: s, name: internalPrefix + "a" + strconv.Itoa(len(pt.aggs)+1)})
		}
		return s, true, nil
	}
	if err := pt.readItems(pr); err != nil {
		return nil, err
	}
	if err := pt.readClauses(pr); err != nil {
		return nil, err
	}
	pt.aggregate = q.GroupBy != nil || len(pt.aggs) > 0
	if pt.aggregate {
		if err := pt.checkShadowing(pr); err != nil {
			return nil, err
		}
		for _, it := range pt.items {
			if it.expr == nil {
				return nil, invalid("SELECT * cannot be grouped: list the columns")
			}
		}
		if err := pt.nameKeys(); err != nil {
			return nil, err
		}
	}
	if err := pt.readLimit(maxRows); err != nil {
		return nil, err
	}
	return pt, nil
}

func (pt *part) readItems(pr *printer) error {
	for _, it := range pt.q.SelectItems {
		cols, _, isStar, err := pr.star(it.Expr)
		if err != nil {
			return err
		}
		if isStar {
			qual := ""
			if ni, ok := it.Expr.(*chp.NestedIdentifier); ok {
				qual = ni.Ident.Name
			}
			for _, c := range cols {
				var e chp.Expr = &chp.Ident{Name: c}
				if qual != "" || len(pr.sc.order) > 1 {
					src := qual
					if src == "" {
						src = pr.sc.order[0]
					}
					e = &chp.Path{Fields: []*chp.Ident{{Name: src}, {Name: c}}}
				}
				pt.items = append(pt.items, outItem{expr: e, text: c})
			}
			continue
		}
		s, err := pr.expr(it.Expr)
		if err != nil {
			return err
		}
		o := outItem{expr: it.Expr, text: s}
		if it.Alias != nil {
			o.alias = it.Alias.Name
		}
		if o.alias == NodeColumn {
			return invalid("%s names the node a row came from: choose another alias", NodeColumn)
		}
		if id, ok := it.Expr.(*chp.Ident); ok && id.Name == NodeColumn && o.alias == "" {
			pt.selectsNode = true
		}
		pt.items = append(pt.items, o)
	}
	if len(pt.items) == 0 {
		return invalid("the select list is empty")
	}
	return nil
}

// checkShadowing refuses, in a grouped query, a select alias that hides a
// column of its tables: the nodes compute the groups without the select
// list, so the alias could not mean there what it means to ClickHouse.
func (pt *part) checkShadowing(pr *printer) error {
	for _, it := range pt.items {
		if it.alias == "" {
			continue
		}
		if id, ok := it.expr.(*chp.Ident); ok && id.Name == it.alias {
			continue
		}
		if len(pr.sc.holders(pr.a.cat, it.alias)) > 0 {
			return invalid("the alias %q hides a column of the same name: choose another alias", it.alias)
		}
	}
	return nil
}

func (pt *part) readClauses(pr *printer) error {
	q := pt.q
	sub := pr.sub
	pr.sub = nil
	for _, c := range []struct {
		kw   string
		expr chp.Expr
	}{{"PREWHERE", exprOf(q.Prewhere)}, {"WHERE", exprOf(q.Where)}} {
		if c.expr == nil {
			continue
		}
		if _, err := pr.expr(c.expr); err != nil {
			return err
		}
	}
	if q.GroupBy != nil {
		keys, err := groupKeys(q.GroupBy)
		if err != nil {
			return err
		}
		for _, k := range keys {
			s, err := pr.expr(k)
			if err != nil {
				return err
			}
			pt.keys = append(pt.keys, groupKey{expr: k, text: s})
		}
	}
	pr.sub = sub
	if q.Having != nil {
		if _, err := pr.expr(q.Having.Expr); err != nil {
			return err
		}
	}
	if q.OrderBy != nil {
		if _, err := pr.orderBy(q.OrderBy, nil); err != nil {
			return err
		}
		for _, it := range q.OrderBy.Items {
			pt.order = append(pt.order, it.(*chp.OrderExpr).Expr)
		}
	}
	if q.LimitBy != nil {
		if q.LimitBy.Limit != nil && q.LimitBy.Limit.Offset != nil {
			return invalid("LIMIT m, n BY is not supported: use LIMIT n BY")
		}
		if _, err := pr.limitBy(q.LimitBy, 0); err != nil {
			return err
		}
		pt.limitBy = unwrap(q.LimitBy.ByExpr.Items)
	}
	return nil
}

func exprOf(c interface{ Pos() chp.Pos }) chp.Expr {
	switch n := c.(type) {
	case *chp.WhereClause:
		if n != nil {
			return n.Expr
		}
	case *chp.PrewhereClause:
		if n != nil {
			return n.Expr
		}
	}
	return nil
}

// nameKeys names the column each group key travels in: the select item's
// alias when the key is one (or is its expression), _node for the node.
func (pt *part) nameKeys() error {
	for i := range pt.keys {
		k := &pt.keys[i]
		if id, ok := k.expr.(*chp.Ident); ok {
			if id.Name == NodeColumn {
				k.name = NodeColumn
				continue
			}
			for _, it := range pt.items {
				if it.alias == id.Name {
					k.expr, k.name = it.expr, it.alias
					s, err := textOf(it.expr)
					if err != nil {
						return err
					}
					k.text = s
				}
			}
			if k.name != "" {
				continue
			}
		}
		for _, it := range pt.items {
			if it.alias != "" && it.text == k.text {
				k.name = it.alias
			}
		}
		if k.name == "" {
			k.name = internalPrefix + "k" + strconv.Itoa(i+1)
		}
	}
	return nil
}

func (pt *part) readLimit(maxRows int) error {
	pt.limit, pt.capped = maxRows, true
	if pt.q.Limit == nil {
		return nil
	}
	n, off, err := limitOf(pt.q.Limit)
	if err != nil {
		return err
	}
	pt.offset = off
	if n > maxRows {
		pt.truncated = true
		return nil
	}
	pt.capped = false
	pt.limit = n
	return nil
}
