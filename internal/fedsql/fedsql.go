// Package fedsql turns a user's read-only SQL over the SynDB tables into the
// query the hub's ClickHouse runs across the federation: every table is
// replaced by the UNION ALL of one remote() per routed node, each row tagged
// with its node (_node), so aggregates over the union are the fleet's
// aggregates. Identifiers and addresses in the compiled query come from the
// registry and the hub's own schema, never from the user's text, which is
// parsed, checked against an allowlist and re-printed from its syntax tree.
package fedsql

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/xwb1989/sqlparser"
)

// NodeColumn is the column every federated row carries: the node it came from.
const NodeColumn = "_node"

// placeholder stands for the federated table while the query is printed.
const placeholder = "syndb_federated_source"

// ErrInvalid is the root of every refusal of the user's SQL (a 400).
var ErrInvalid = errors.New("invalid query")

// ErrUnsafe is returned by Compile when the compiled statement, read as
// ClickHouse reads it, is not what the compiler meant to write: another
// table function, a function off the allowlist, a clause or a comment the
// checked query cannot hold. It wraps ErrInvalid: the user's text caused it.
var ErrUnsafe = fmt.Errorf("%w: the query does not compile to a safe statement", ErrInvalid)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Catalog is what the compiler knows of the SynDB tables: for each table
// and column, the schema version that introduced it (migrate.ColumnVersions).
type Catalog map[string]map[string]int

// Target is a node a query may read, and how the hub's ClickHouse reaches
// its warehouse.
type Target struct {
	Name     string
	Addr     string // host:port of the node's ClickHouse (native protocol)
	Database string
	User     string
	Password string
}

// Parsed is a checked query: what it reads and needs, ready to compile.
type Parsed struct {
	sel   *sqlparser.Select
	Table string
	// MinSchema is the schema version a node needs to answer.
	MinSchema int
	// Aggregate is set when rows are not single node rows (GROUP BY or an
	// aggregate function): then rows carry _node only if the query asks.
	Aggregate bool
	// Limit is the row limit the query runs with.
	Limit int
	// Truncated is set when the user's LIMIT was lowered to the maximum.
	Truncated bool
}

// MaxDepth bounds how deeply the query's expressions nest. ClickHouse
// parses and analyses a query recursively; a deep one (1,000 nested CASE)
// overflows its stack, so it is refused before ClickHouse sees it.
const MaxDepth = 64

// Parse checks sql: one SELECT over one known table, known columns and
// allowed functions only, no subqueries, joins, unions or INTO. maxRows caps
// the LIMIT (a query without one gets maxRows).
func Parse(sql string, cat Catalog, maxRows int) (*Parsed, error) {
	text := strings.TrimSpace(sql)
	text = strings.TrimSpace(strings.TrimSuffix(text, ";"))
	if text == "" {
		return nil, invalid("empty query")
	}
	if len(text) > 64<<10 {
		return nil, invalid("query of %d bytes, at most 64 KiB", len(text))
	}
	if strings.Contains(text, ";") && hasStatementBreak(text) {
		return nil, invalid("one statement only")
	}
	stmt, err := parse(text)
	if err != nil {
		return nil, err
	}
	sel, ok := stmt.(*sqlparser.Select)
	if !ok {
		return nil, invalid("only SELECT is allowed, got %s", statementKind(stmt))
	}
	if sel.Lock != "" {
		return nil, invalid("locking clauses are not allowed")
	}
	if sel.Hints != "" {
		return nil, invalid("query hints are not supported")
	}
	// Comments are dropped: only the syntax tree is printed.
	sel.Comments = nil
	if len(sel.From) != 1 {
		return nil, invalid("one table per query: joins are not supported")
	}
	ate, ok := sel.From[0].(*sqlparser.AliasedTableExpr)
	if !ok {
		return nil, invalid("one table per query: joins are not supported")
	}
	tn, ok := ate.Expr.(sqlparser.TableName)
	if !ok {
		return nil, invalid("subqueries in FROM are not supported")
	}
	if !tn.Qualifier.IsEmpty() {
		return nil, invalid("name the table without a database: %s", tn.Name.String())
	}
	table := tn.Name.String()
	cols, ok := cat[table]
	if !ok {
		return nil, invalid("unknown table %q (known: %s)", table, knownTables(cat))
	}
	if ate.Partitions != nil || ate.Hints != nil {
		return nil, invalid("partitions and index hints are not supported")
	}
	p := &Parsed{sel: sel, Table: table, Limit: maxRows}
	alias := table
	if !ate.As.IsEmpty() {
		alias = ate.As.String()
	}
	aliases := map[string]bool{}
	for _, e := range sel.SelectExprs {
		if ae, ok := e.(*sqlparser.AliasedExpr); ok && !ae.As.IsEmpty() {
			aliases[ae.As.Lowered()] = true
		}
	}
	star := false
	for _, e := range sel.SelectExprs {
		if _, ok := e.(*sqlparser.StarExpr); ok {
			star = true
		}
	}
	if err := checkDepth(MaxDepth, sel.SelectExprs, sel.Where, sel.GroupBy, sel.Having, sel.OrderBy); err != nil {
		return nil, err
	}
	if !ate.As.IsEmpty() {
		if err := checkIdent(ate.As.String()); err != nil {
			return nil, err
		}
	}
	c := &checker{p: p, cols: cols, table: table, alias: alias, aliases: aliases}
	if err := sqlparser.Walk(c.visit, sel.SelectExprs, sel.Where, sel.GroupBy, sel.Having, sel.OrderBy); err != nil {
		return nil, err
	}
	if star {
		for _, v := range cols {
			p.MinSchema = max(p.MinSchema, v)
		}
	}
	if len(sel.GroupBy) > 0 {
		p.Aggregate = true
	}
	if err := p.limit(maxRows); err != nil {
		return nil, err
	}
	// Rows of a plain SELECT say which node they came from.
	if !p.Aggregate && !star && !selects(sel, NodeColumn) {
		sel.SelectExprs = append(sqlparser.SelectExprs{&sqlparser.AliasedExpr{Expr: &sqlparser.ColName{Name: sqlparser.NewColIdent(NodeColumn)}}},
			sel.SelectExprs...)
	}
	ate.Expr = sqlparser.TableName{Name: sqlparser.NewTableIdent(placeholder)}
	ate.As = sqlparser.NewTableIdent(alias)
	return p, nil
}

// parse runs the SQL parser, which panics on some malformed input (an
// empty MySQL comment "/*!*/"): that is a refusal too.
func parse(text string) (stmt sqlparser.Statement, err error) {
	defer func() {
		if r := recover(); r != nil {
			stmt, err = nil, invalid("cannot parse the query")
		}
	}()
	stmt, err = sqlparser.Parse(text)
	if err != nil {
		return nil, invalid("cannot parse: %v", err)
	}
	return stmt, nil
}

// WithLimit returns a copy of p that reads at most n rows (n = 0 reads
// none: the result's columns and types only).
func (p *Parsed) WithLimit(n int) *Parsed {
	sel := *p.sel
	sel.Limit = &sqlparser.Limit{Rowcount: sqlparser.NewIntVal([]byte(strconv.Itoa(n)))}
	out := *p
	out.sel, out.Limit = &sel, n
	return &out
}

// limit applies the row cap to the query's LIMIT.
func (p *Parsed) limit(maxRows int) error {
	sel := p.sel
	if sel.Limit == nil {
		sel.Limit = &sqlparser.Limit{}
	}
	if sel.Limit.Offset != nil {
		if _, err := intLiteral(sel.Limit.Offset); err != nil {
			return err
		}
	}
	if sel.Limit.Rowcount != nil {
		n, err := intLiteral(sel.Limit.Rowcount)
		if err != nil {
			return err
		}
		if n <= maxRows {
			p.Limit = n
			return nil
		}
		p.Truncated = true
	}
	sel.Limit.Rowcount = sqlparser.NewIntVal([]byte(strconv.Itoa(maxRows)))
	p.Limit = maxRows
	return nil
}

func intLiteral(e sqlparser.Expr) (int, error) {
	v, ok := e.(*sqlparser.SQLVal)
	if !ok || v.Type != sqlparser.IntVal {
		return 0, invalid("LIMIT and OFFSET take whole numbers")
	}
	n, err := strconv.Atoi(string(v.Val))
	if err != nil || n < 0 {
		return 0, invalid("LIMIT and OFFSET take whole numbers, not %s", v.Val)
	}
	return n, nil
}

func selects(sel *sqlparser.Select, col string) bool {
	for _, e := range sel.SelectExprs {
		if ae, ok := e.(*sqlparser.AliasedExpr); ok {
			if c, ok := ae.Expr.(*sqlparser.ColName); ok && c.Name.String() == col && ae.As.IsEmpty() {
				return true
			}
		}
	}
	return false
}

var (
	nodeNameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	hostPortRe = regexp.MustCompile(`^[A-Za-z0-9.\-]+:[0-9]{1,5}$|^\[[0-9A-Fa-f:.]+\]:[0-9]{1,5}$`)
	identRe    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Compile prints the query with its table replaced by the union of the
// targets' remote() tables. The result holds credentials: never log it.
func (p *Parsed) Compile(targets []Target) (string, error) {
	if len(targets) == 0 {
		return "", errors.New("no node to read from")
	}
	parts := make([]string, 0, len(targets))
	for _, t := range targets {
		if err := t.check(); err != nil {
			return "", err
		}
		parts = append(parts, fmt.Sprintf("SELECT %s AS %s, * FROM remote(%s, %s, %s, %s, %s)",
			quote(t.Name), NodeColumn, quote(t.Addr), quote(t.Database), quote(p.Table), quote(t.User), quote(t.Password)))
	}
	body := sqlparser.String(p.sel)
	if err := checkBody(body); err != nil {
		return "", fmt.Errorf("%w: %w", ErrUnsafe, err)
	}
	source := "(" + strings.Join(parts, " UNION ALL ") + ")"
	out := strings.Replace(body, placeholder, source, 1)
	if err := checkCompiled(out, p.Table, targets); err != nil {
		return "", fmt.Errorf("%w: %w", ErrUnsafe, err)
	}
	return out, nil
}

// ProbeSQL is the statement that checks, from the hub's ClickHouse, that
// t's warehouse answers at all: one row of its system.one through remote().
// The result holds credentials: never log it.
func ProbeSQL(t Target) (string, error) {
	if err := t.check(); err != nil {
		return "", err
	}
	return fmt.Sprintf("SELECT dummy FROM remote(%s, system.one, %s, %s)", quote(t.Addr), quote(t.User), quote(t.Password)), nil
}

func (t Target) check() error {
	if !nodeNameRe.MatchString(t.Name) || !hostPortRe.MatchString(t.Addr) || !identRe.MatchString(t.Database) {
		return fmt.Errorf("registry entry %q has an unusable address or database", t.Name)
	}
	return nil
}

// quote makes a ClickHouse string literal.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(s) + "'"
}

func knownTables(cat Catalog) string {
	names := make([]string, 0, len(cat))
	for t := range cat {
		names = append(names, t)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func statementKind(stmt sqlparser.Statement) string {
	switch s := stmt.(type) {
	case *sqlparser.Union:
		return "UNION"
	case *sqlparser.Insert:
		return "INSERT"
	case *sqlparser.Update:
		return "UPDATE"
	case *sqlparser.Delete:
		return "DELETE"
	case *sqlparser.DDL:
		return strings.ToUpper(s.Action)
	case *sqlparser.Set:
		return "SET"
	case *sqlparser.Show:
		return "SHOW"
	default:
		return "another statement"
	}
}

// hasStatementBreak reports a ';' outside string literals and quoted names.
func hasStatementBreak(s string) bool {
	var quote rune
	for i, r := range s {
		switch {
		case quote != 0:
			if r == quote && (i == 0 || s[i-1] != '\\') {
				quote = 0
			}
		case r == '\'' || r == '"' || r == '`':
			quote = r
		case r == ';':
			return true
		}
	}
	return false
}
