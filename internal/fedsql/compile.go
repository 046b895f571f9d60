package fedsql

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	chp "github.com/AfterShip/clickhouse-sql-parser/parser"
)

// Plan is a compiled query: the statement the hub's ClickHouse runs, and
// what each node runs of it. It holds credentials: never log it (Explain
// masks them).
type Plan struct {
	// SQL is the whole statement.
	SQL string
	// Nodes is, per node, the query that node answers (node scope), in
	// target order.
	Nodes []NodeQuery
	// Merge is the hub's query over the nodes' answers, each node's share
	// written as {node}.
	Merge string
	// remotes are the remote() calls the statement makes, in order.
	remotes []remoteCall
}

// NodeQuery is the share of a query one node answers.
type NodeQuery struct {
	Node string `json:"node"`
	SQL  string `json:"sql"`
}

type remoteCall struct {
	target Target
	table  string
}

// Compile prints the query for targets. The result holds credentials:
// never log it.
func (p *Parsed) Compile(targets []Target) (string, error) {
	plan, err := p.Plan(targets)
	if err != nil {
		return "", err
	}
	return plan.SQL, nil
}

// Plan compiles the query for targets and checks the statement as
// ClickHouse will read it.
func (p *Parsed) Plan(targets []Target) (*Plan, error) {
	if len(targets) == 0 {
		return nil, errors.New("no node to read from")
	}
	for _, t := range targets {
		if err := t.check(); err != nil {
			return nil, err
		}
	}
	c := &compiler{p: p, targets: targets, plan: &Plan{}}
	var err error
	if p.scope == ScopeFleet {
		err = c.fleet()
	} else {
		err = c.pushdown()
	}
	if err != nil {
		return nil, err
	}
	if err := checkCompiled(c.plan.SQL, c.plan.remotes); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnsafe, err)
	}
	if len(p.textSettings) > 0 {
		// Appended after the check: the compiler's constants, never the user's.
		c.plan.SQL += " SETTINGS " + strings.Join(p.textSettings, ", ")
	}
	return c.plan, nil
}

// compiler prints one Plan.
type compiler struct {
	p       *Parsed
	targets []Target
	plan    *Plan
}

// remote prints the remote() call that reads table on t, and records it.
func (c *compiler) remote(t Target, table string) string {
	c.plan.remotes = append(c.plan.remotes, remoteCall{target: t, table: table})
	return fmt.Sprintf("remote(%s, %s, %s, %s, %s)", quote(t.Addr), quote(t.Database), quote(table), quote(t.User), quote(t.Password))
}

// columnsRead lists the columns of table the query reads (its first
// column when it reads none: ClickHouse needs one to count rows).
func (c *compiler) columnsRead(table string) []string {
	var cols []string
	for _, col := range c.p.cat.columns(table) {
		if c.p.used[table][col] {
			cols = append(cols, col)
		}
	}
	if len(cols) == 0 {
		cols = append(cols, c.p.cat.columns(table)[0])
	}
	return cols
}

// nodePrinter prints a SELECT as node t runs it: its tables read through
// remote() on t, IN (subquery) and JOIN evaluated by the hub on t's rows
// and shipped back with the query (GLOBAL).
func (c *compiler) nodePrinter(t Target, a *analysis) *printer {
	pr := &printer{a: a, sc: newScope(), top: true, global: true}
	pr.from = func(table, alias string, joined int, using []string) (string, error) {
		src := c.remote(t, table)
		if joined > 0 {
			cols := c.columnsRead(table)
			items := make([]string, 0, len(cols))
			for _, col := range cols {
				items = append(items, quoteIdent(col)+" AS "+joinedName(joined, col))
				if slices.Contains(using, col) {
					items = append(items, quoteIdent(col))
				}
			}
			src = "(SELECT " + strings.Join(items, ", ") + " FROM " + src + ")"
		}
		return src + " AS " + quoteIdent(alias), nil
	}
	return pr
}

// pushdown compiles every part so each node answers its share and the hub
// merges.
func (c *compiler) pushdown() error {
	var parts, merges []string
	for _, pt := range c.p.parts {
		var branches []string
		var merge string
		var err error
		for _, t := range c.targets {
			var b string
			if pt.aggregate {
				b, err = c.aggregateBranch(pt, t)
			} else {
				b, err = c.rowsBranch(pt, t)
			}
			if err != nil {
				return err
			}
			branches = append(branches, b)
			c.plan.Nodes = append(c.plan.Nodes, NodeQuery{Node: t.Name, SQL: b})
		}
		if pt.aggregate {
			merge, err = c.aggregateMerge(pt)
		} else {
			merge, err = c.rowsMerge(pt)
		}
		if err != nil {
			return err
		}
		parts = append(parts, strings.Replace(merge, branchesMark, "("+strings.Join(branches, " UNION ALL ")+")", 1))
		shares := make([]string, len(c.targets))
		for i, t := range c.targets {
			shares[i] = "{" + t.Name + "}"
		}
		merges = append(merges, strings.Replace(merge, branchesMark, "("+strings.Join(shares, " UNION ALL ")+")", 1))
	}
	c.plan.SQL, c.plan.Merge = union(parts, c.p.Limit), union(merges, c.p.Limit)
	return nil
}

// branchesMark stands for the nodes' answers in a merge query.
const branchesMark = "\x00branches\x00"

func union(parts []string, limit int) string {
	if len(parts) == 1 {
		return parts[0]
	}
	return "SELECT * FROM (" + strings.Join(parts, " UNION ALL ") + ") LIMIT " + strconv.Itoa(limit)
}

// nodeLiteral is the select item that names the node in its answer.
func nodeLiteral(t Target) string { return quote(t.Name) + " AS " + NodeColumn }

// head prints WITH and the start of a SELECT.
func head(with []string, distinct bool) string {
	s := ""
	if len(with) > 0 {
		s = "WITH " + strings.Join(with, ", ") + " "
	}
	s += "SELECT "
	if distinct {
		s += "DISTINCT "
	}
	return s
}

// body prints FROM, ARRAY JOIN, PREWHERE and WHERE as node t runs them.
func (c *compiler) body(pr *printer, pq *prepared, q *chp.SelectQuery) (string, error) {
	var b strings.Builder
	if pq.from != "" {
		b.WriteString(" FROM " + pq.from)
	}
	if pq.arrayJoin != "" {
		b.WriteString(" " + pq.arrayJoin)
	}
	for _, cl := range []struct {
		kw string
		e  chp.Expr
	}{{"PREWHERE", exprOf(q.Prewhere)}, {"WHERE", exprOf(q.Where)}} {
		if cl.e == nil {
			continue
		}
		s, err := pr.expr(cl.e)
		if err != nil {
			return "", err
		}
		b.WriteString(" " + cl.kw + " " + s)
	}
	return b.String(), nil
}

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
			continue
		}
		s, err := pr.expr(k.expr)
		if err != nil {
			return "", err
		}
		items = append(items, s+" AS "+quoteIdent(k.name))
	}
	for _, ag := range pt.aggs {
		name, cl := stateOf(ag.c)
		pr.inAggregate = true
		s, err := pr.printCall(name, cl)
		pr.inAggregate = false
		if err != nil {
			return "", err
		}
		items = append(items, s+" AS "+ag.name)
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

// stateOf is the -State form of an aggregate call (count(DISTINCT x) is
// uniqExact's).
func stateOf(cl call) (string, call) {
	if cl.distinct {
		cl.distinct = false
		return "uniqExactState", cl
	}
	return cl.name + "State", cl
}

func mergeOf(cl call) string {
	if cl.distinct {
		return "uniqExactMerge"
	}
	return cl.name + "Merge"
}

// mergePrinter prints the hub's query over the nodes' answers: group keys
// and aggregates are read from the columns the nodes computed them in.
func (c *compiler) mergePrinter(pt *part, withConst []string) *printer {
	sc := newScope()
	for _, k := range pt.keys {
		sc.names[k.name] = true
	}
	for _, it := range pt.items {
		if it.alias != "" {
			sc.names[it.alias] = true
		}
	}
	for _, w := range withConst {
		sc.names[w[strings.LastIndex(w, " AS ")+4:]] = true
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
			return s + "(" + ag.name + ")", true, nil
		}
		return "", false, nil
	}
	return pr
}

// aggregateMerge is the hub's query merging the nodes' aggregate states.
func (c *compiler) aggregateMerge(pt *part) (string, error) {
	pq, err := (&printer{a: newAnalysis(c.p.cat), sc: newScope(), top: true, from: placeholderSource}).prepare(pt.q)
	if err != nil {
		return "", err
	}
	pr := c.mergePrinter(pt, pq.withConst)
	items := make([]string, 0, len(pt.items))
	for _, it := range pt.items {
		s, err := pr.expr(it.expr)
		if err != nil {
			return "", err
		}
		items = append(items, named(s, it))
	}
	out := head(pq.withConst, pt.q.HasDistinct) + strings.Join(items, ", ") + " FROM " + branchesMark
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
		items = append(items, s+" AS "+itemName(pt, i))
	}
	if !pt.q.HasDistinct {
		for i, e := range pt.order {
			s, err := pr.expr(e)
			if err != nil {
				return "", err
			}
			items = append(items, s+" AS "+hiddenName("o", i))
		}
		for i, e := range pt.limitBy {
			s, err := pr.expr(e)
			if err != nil {
				return "", err
			}
			items = append(items, s+" AS "+hiddenName("b", i))
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

// rowsMerge is the hub's query over the nodes' rows: the same order and
// limits again, over the columns the nodes sent.
func (c *compiler) rowsMerge(pt *part) (string, error) {
	var items []string
	if pt.addsNode() {
		items = append(items, NodeColumn)
	}
	for i, it := range pt.items {
		ref := itemName(pt, i)
		if it.alias != "" || isNode(it) {
			items = append(items, ref)
			continue
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

// fleet compiles the query to run on the hub over the union of every
// node's rows of each table it reads.
func (c *compiler) fleet() error {
	var parts []string
	for _, pt := range c.p.parts {
		pr := &printer{a: newAnalysis(c.p.cat), sc: newScope(), top: true}
		pr.from = func(table, alias string, _ int, _ []string) (string, error) {
			read := c.columnsRead(table)
			for i, col := range read {
				read[i] = quoteIdent(col)
			}
			cols := strings.Join(read, ", ")
			branches := make([]string, len(c.targets))
			for i, t := range c.targets {
				branches[i] = "SELECT " + nodeLiteral(t) + ", " + cols + " FROM " + c.remote(t, table)
			}
			return "(" + strings.Join(branches, " UNION ALL ") + ") AS " + quoteIdent(alias), nil
		}
		pr.fleetLimit = &[2]int{pt.offset, pt.limit}
		pr.prependNode = !pt.aggregate && !c.p.joins && pt.addsNode()
		s, _, err := pr.nested(pt.q)
		if err != nil {
			return err
		}
		parts = append(parts, s)
	}
	c.plan.SQL = union(parts, c.p.Limit)
	c.plan.Merge = c.plan.SQL
	return nil
}
