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
	if len(c.plan.SQL) > MaxStatement {
		return nil, invalid("the query compiles to %d KiB for %d nodes, more than the %d KiB the hub's ClickHouse reads", len(c.plan.SQL)>>10, len(targets), MaxStatement>>10)
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

// MaxRemotes bounds the remote() calls one compiled statement makes (every
// table the query names, once per node), and MaxStatement its size: the
// hub's ClickHouse reads at most 256 KiB of query.
const (
	MaxRemotes   = 1024
	MaxStatement = 256 << 10
)

// budget refuses a query that would compile to more remote() calls than
// MaxRemotes, before it is printed any further.
func (c *compiler) budget() error {
	if len(c.plan.remotes) >= MaxRemotes {
		return invalid("the query reads its tables more than %d times across %d nodes: read fewer tables or nodes", MaxRemotes, len(c.targets))
	}
	return nil
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
		if err := c.budget(); err != nil {
			return "", err
		}
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

// fleet compiles the query to run on the hub over the union of every
// node's rows of each table it reads.
func (c *compiler) fleet() error {
	var parts []string
	for _, pt := range c.p.parts {
		pr := &printer{a: newAnalysis(c.p.cat), sc: newScope(), top: true}
		pr.from = func(table, alias string, _ int, _ []string) (string, error) {
			if err := c.budget(); err != nil {
				return "", err
			}
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
