package fedsql

import (
	"strings"

	chp "github.com/AfterShip/clickhouse-sql-parser/parser"
)

// aggregateBranch is what node t computes of an aggregate: its group keys
// and each aggregate's -State, grouped.
func (c *compiler) aggregateBranch(pt *part, t Target) (string, error) {
	pr := c.nodePrinter(t, newAnalysis(c.p.cat))
	pq, err := pr.prepare(pt.q)
	if err != nil {
		return "", err
	}
	items := []string{nodeLiteral(t)}
	var group []string
	for _, k := range pt.keys {
		group = append(group, quoteIdent(k.name))
		if k.name == NodeColumn {
			// Grouped by a constant, ClickHouse answers one group even of
			// no rows; by a column, none, as the node's own GROUP BY does.
			items[0] = "materialize(" + quote(t.Name) + ") AS " + NodeColumn
			continue
		}
		s, err := pr.expr(k.expr)
		if err != nil {
			return "", err
		}
		items = append(items, c.materialized(pr, pt, k.expr, s)+" AS "+quoteIdent(k.name))
		if constant(k.expr, pt.consts) {
			// Grouped by the constant itself, not by its materialised
			// column: ClickHouse drops a key it folds to a constant, so an
			// aggregate of no rows answers one group, as the query does on
			// ClickHouse (a key it does not fold, arrayJoin or a lambda's,
			// groups as a column does).
			group[len(group)-1] = s
		}
	}
	for i, ag := range pt.aggs {
		name, cl := stateOf(ag.c)
		pr.inAggregate = true
		s, err := pr.printCall(name, cl)
		pr.inAggregate = false
		if err != nil {
			return "", err
		}
		items = append(items, s+" AS "+ag.name)
		count, err := c.nullCount(pr, ag.c)
		if err != nil {
			return "", err
		}
		if count != "" {
			pt.aggs[i].nonNull = internalPrefix + "n" + strings.TrimPrefix(ag.name, internalPrefix+"a")
			items = append(items, count+" AS "+pt.aggs[i].nonNull)
		}
	}
	body, err := c.body(pr, pq, pt.q)
	if err != nil {
		return "", err
	}
	out := head(pq.with, false) + strings.Join(items, ", ") + body
	if len(group) > 0 {
		out += " GROUP BY " + strings.Join(group, ", ")
	}
	return out, nil
}

// notNullable are the aggregates whose answer ClickHouse never makes NULL:
// count, and those that answer an array or a tuple.
var notNullable = setOf("count", "quantiles", "quantilesexact", "grouparray", "groupuniqarray", "topk", "summap",
	"summapfiltered", "histogram", "simplelinearregression")

// nullCount is what node computes beside cl's state when an argument of cl
// is Nullable (nullable: a Nullable column, or an expression of one, NULL,
// nullIf …): the count of the rows whose Nullable arguments are all set, as
// a -State. ClickHouse answers NULL for such an aggregate of no such rows,
// but 18.16 drops the Nullable from its -State, so -Merge would answer 0.
// The -If combinator's condition is an argument like the others: 18.16
// answers sumIf(x, cond) NULL where no row has both x and cond set, and 0
// where some has but cond holds on none; countIf of a Nullable argument is
// Nullable, as count of one is not. "" when cl needs none: no such
// argument, a combinator other than -If, or an aggregate that is never
// NULL. An argument that is not Nullable travels without it: its aggregate
// of no rows is 0 (or the type's default), not NULL.
func (c *compiler) nullCount(pr *printer, cl call) (string, error) {
	name, withIf := cutIf(strings.ToLower(cl.name))
	if !aggregates[name] || (notNullable[name] && !cl.distinct && (!withIf || name != "count")) {
		return "", nil
	}
	var cols []string
	for _, a := range unwrap(cl.args) {
		if !c.nullable(pr.sc, a) {
			continue
		}
		s, err := pr.expr(a)
		if err != nil {
			return "", err
		}
		cols = append(cols, s)
	}
	switch len(cols) {
	case 0:
		return "", nil
	case 1:
		return "countState(" + cols[0] + ")", nil
	}
	for i, s := range cols {
		cols[i] = "isNull(" + s + ")"
	}
	return "countState(if(" + strings.Join(cols, " OR ") + ", NULL, 1))", nil
}

// cutIf is name (lower case) without its -If combinators, and whether it
// had any.
func cutIf(name string) (string, bool) {
	cut := false
	for !aggregates[name] && len(name) > len("if") && strings.HasSuffix(name, "if") {
		name, cut = strings.TrimSuffix(name, "if"), true
	}
	return name, cut
}

// stateOf is the -State form of an aggregate call (count(DISTINCT x) is
// uniqExact's).
func stateOf(cl call) (string, call) {
	if cl.distinct {
		cl.distinct = false
		return "uniqExactState", cl
	}
	return spelt(cl.name) + "State", cl
}

func mergeOf(cl call) string {
	if cl.distinct {
		return "uniqExactMerge"
	}
	return spelt(cl.name) + "Merge"
}

// spelt is an aggregate's name as ClickHouse spells it (aggregateNames);
// a name with combinators stays as the query wrote it.
func spelt(name string) string {
	if n, ok := aggregateNames[strings.ToLower(name)]; ok {
		return n
	}
	return name
}

// mergePrinter prints the hub's query over the nodes' answers: group keys
// and aggregates are read from the columns the nodes computed them in.
func (c *compiler) mergePrinter(pt *part) *printer {
	sc := newScope()
	for _, k := range pt.keys {
		sc.names[k.name] = true
	}
	for _, it := range pt.items {
		if it.alias != "" {
			sc.names[it.alias] = true
		}
	}
	hubConsts := map[string]bool{}
	for _, n := range pt.constNames {
		sc.names[n] = true
		hubConsts[n] = true
	}
	sc.merge = true
	pr := &printer{a: newAnalysis(c.p.cat), sc: sc, top: true}
	keys := map[string]string{}
	for _, k := range pt.keys {
		keys[k.text] = k.name
	}
	aggs := map[string]aggregateCall{}
	for _, ag := range pt.aggs {
		aggs[ag.text] = ag
	}
	pr.sub = func(e chp.Expr) (string, bool, error) {
		if readsLambdaParam(sc, e) {
			// A lambda's parameter is not the group key of the same name.
			return "", false, nil
		}
		if id, ok := e.(*chp.Ident); ok && hubConsts[id.Name] {
			// A WITH constant the merge query holds too is read there,
			// though it is a group key: the key's column may not be named
			// after it beside the WITH.
			return "", false, nil
		}
		text, err := textOf(e)
		if err != nil {
			return "", false, nil //nolint:nilerr // not a whole expression: printed part by part
		}
		if name, ok := keys[text]; ok {
			return quoteIdent(name), true, nil
		}
		if ag, ok := aggs[text]; ok {
			s := mergeOf(ag.c)
			if ag.c.params != nil {
				ps, err := pr.args(ag.c.params)
				if err != nil {
					return "", true, err
				}
				s += "(" + ps + ")"
			}
			s += "(" + ag.name + ")"
			if ag.nonNull != "" {
				s = "if(countMerge(" + ag.nonNull + ") = 0, NULL, " + s + ")"
			}
			return s, true, nil
		}
		return "", false, nil
	}
	return pr
}

// aggregateMerge is the hub's query merging the nodes' aggregate states.
func (c *compiler) aggregateMerge(pt *part) (string, error) {
	pr := c.mergePrinter(pt)
	items := make([]string, 0, len(pt.items))
	for _, it := range pt.items {
		s, err := pr.expr(it.expr)
		if err != nil {
			return "", err
		}
		items = append(items, named(s, it))
	}
	out := head(pt.withConst, pt.q.HasDistinct) + strings.Join(items, ", ") + " FROM " + branchesMark
	if len(pt.keys) > 0 {
		names := make([]string, len(pt.keys))
		for i, k := range pt.keys {
			names[i] = quoteIdent(k.name)
		}
		out += " GROUP BY " + strings.Join(names, ", ")
	}
	if pt.q.Having != nil {
		s, err := pr.expr(pt.q.Having.Expr)
		if err != nil {
			return "", err
		}
		out += " HAVING " + s
	}
	rest, err := c.orderAndLimit(pr, pt, nil)
	if err != nil {
		return "", err
	}
	return out + rest, nil
}

// named gives a merge-query column the name the user's query gives it.
func named(s string, it outItem) string {
	if it.alias != "" {
		if s == quoteIdent(it.alias) {
			return s
		}
		return s + " AS " + quoteIdent(it.alias)
	}
	if s == quoteIdent(it.text) {
		return s
	}
	return s + " AS " + quoteName(it.text)
}

// quoteName quotes any text as a ClickHouse name.
func quoteName(s string) string {
	r := strings.NewReplacer(`\`, `\\`, "`", "\\`")
	return "`" + r.Replace(s) + "`"
}

// readsLambdaParam reports whether e names a parameter of a lambda being
// printed.
func readsLambdaParam(sc *scope, e chp.Expr) bool {
	if len(sc.lambda) == 0 {
		return false
	}
	_, found := chp.Find(e, func(n chp.Expr) bool {
		id, ok := n.(*chp.Ident)
		return ok && sc.lambda[id.Name] > 0
	})
	return found
}
