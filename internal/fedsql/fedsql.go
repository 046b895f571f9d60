// Package fedsql turns a user's read-only ClickHouse SQL over the SynDB
// tables into the statement the hub's ClickHouse runs across the
// federation, with the work pushed down to the nodes: each routed node runs
// the query over its own tables (through remote()) to its mergeable state —
// filters, column pruning, -State aggregates, ORDER BY … LIMIT n — and the
// hub merges the nodes' answers (-Merge), as ClickHouse's own distributed
// processing does. Joins and IN (subquery) between SynDB tables run per
// node (a dataset's rows live on one node); the fleet scope joins across
// nodes on the hub instead. Identifiers and addresses in the compiled
// statement come from the registry and the hub's schema, never from the
// user's text, which is parsed with a ClickHouse-dialect parser, checked
// against an allowlist and re-printed from its syntax tree; the result is
// read once more the way ClickHouse reads it before it is sent.
package fedsql

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	chp "github.com/AfterShip/clickhouse-sql-parser/parser"
)

// NodeColumn is the column that names the node a row or group came from.
const NodeColumn = "_node"

// ErrInvalid is the root of every refusal of the user's SQL (a 400).
var ErrInvalid = errors.New("invalid query")

// ErrUnsafe is returned by Compile when the compiled statement, read as
// ClickHouse reads it, is not what the compiler meant to write: another
// table function, a function off the allowlist, a clause the checked query
// cannot hold. It wraps ErrInvalid: the user's text caused it.
var ErrUnsafe = fmt.Errorf("%w: the query does not compile to a safe statement", ErrInvalid)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Catalog is what the compiler knows of the SynDB tables: each column, the
// schema version that introduced it, and the order of the columns.
type Catalog struct {
	versions map[string]map[string]int
	order    map[string][]string
	// nullable are the Nullable columns, by table.
	nullable map[string]map[string]bool
}

// WithTypes is c knowing the columns' ClickHouse types (migrate.ColumnTypes),
// so that an aggregate of a Nullable column answers NULL where ClickHouse
// does.
func (c Catalog) WithTypes(types map[string]map[string]string) Catalog {
	c.nullable = map[string]map[string]bool{}
	for t, cols := range types {
		for col, typ := range cols {
			if strings.HasPrefix(strings.TrimSpace(typ), "Nullable(") {
				if c.nullable[t] == nil {
					c.nullable[t] = map[string]bool{}
				}
				c.nullable[t][col] = true
			}
		}
	}
	return c
}

// NewCatalog builds a catalog from the columns' versions
// (migrate.ColumnVersions) and their order in each table
// (migrate.ColumnOrder); a table without an order lists its columns by name.
func NewCatalog(versions map[string]map[string]int, order map[string][]string) Catalog {
	c := Catalog{versions: versions, order: map[string][]string{}}
	for t, cols := range versions {
		var list []string
		for _, col := range order[t] {
			if _, ok := cols[col]; ok {
				list = append(list, col)
			}
		}
		if len(list) != len(cols) {
			list = list[:0]
			for col := range cols {
				list = append(list, col)
			}
			slices.Sort(list)
		}
		c.order[t] = list
	}
	return c
}

func (c Catalog) columns(table string) []string { return c.order[table] }

func (c Catalog) tableList() string {
	names := make([]string, 0, len(c.versions))
	for t := range c.versions {
		names = append(names, t)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Target is a node a query may read, and how the hub's ClickHouse reaches
// its warehouse.
type Target struct {
	Name     string
	Addr     string // host:port of the node's ClickHouse (native protocol), or replicas a:1|b:2 of it
	Database string
	User     string
	Password string
}

// Scope says where joins and IN (subquery) between SynDB tables run.
type Scope string

// Scopes of a query.
const (
	// ScopeNode runs the query on each node over that node's rows and
	// merges the answers: a join joins each node's rows with its own.
	ScopeNode Scope = "node"
	// ScopeFleet reads the union of every node's rows and runs the query
	// on the hub: a join may match rows of different nodes.
	ScopeFleet Scope = "fleet"
)

// Options bound what a query may ask for.
type Options struct {
	// MaxRows caps the LIMIT (a query without one gets MaxRows).
	MaxRows int
	// MaxSeconds caps SETTINGS max_execution_time.
	MaxSeconds int
	// Scope is where joins run; empty means ScopeNode.
	Scope Scope
	// MaxJoinRows caps the rows a fleet-scope join may hold in memory on
	// the hub (0: 1,000,000).
	MaxJoinRows int
}

// Parsed is a checked query: what it reads and needs, ready to compile.
type Parsed struct {
	parts []*part
	scope Scope
	// Tables are the SynDB tables the query reads, sorted.
	Tables []string
	// MinSchema is the schema version a node needs to answer: the newest
	// of the versions of every column the query reads.
	MinSchema int
	// Aggregate is set when the answer's rows are groups, not node rows.
	Aggregate bool
	// Limit is the row limit the query runs with.
	Limit int
	// Truncated is set when the user's LIMIT was lowered to the maximum.
	Truncated bool
	// Capped is set when Limit is the maximum, not a LIMIT of the user's
	// (none, or a larger one): an answer of Limit rows may have been cut.
	Capped bool
	// Settings are the query's own SETTINGS, checked against the safe list,
	// and the numeric ones the compiled statement needs (the fleet join
	// cap): the caller sends them with the statement.
	Settings map[string]any
	// textSettings are the compiler's own settings with text values,
	// written into the statement's SETTINGS clause.
	textSettings []string
	joins        bool
	usesNode     bool
	cat          Catalog
	used         map[string]map[string]bool
}

// analysis is what printing the query once, to check it, learns.
type analysis struct {
	cat       Catalog
	minSchema int
	tables    map[string]bool
	used      map[string]map[string]bool // table → columns read
	joins     bool
	usesNode  bool
}

func newAnalysis(cat Catalog) *analysis {
	return &analysis{cat: cat, tables: map[string]bool{}, used: map[string]map[string]bool{}}
}

func (a *analysis) need(table, col string) {
	a.minSchema = max(a.minSchema, a.cat.versions[table][col])
	if a.used[table] == nil {
		a.used[table] = map[string]bool{}
	}
	a.used[table][col] = true
}

func (a *analysis) column(sc *scope, name string) error {
	if name == NodeColumn {
		a.usesNode = true
	}
	tables, err := sc.column(a.cat, name)
	if err != nil {
		return err
	}
	for _, t := range tables {
		a.need(t, name)
	}
	return nil
}

func (a *analysis) qualified(sc *scope, alias, name string) error {
	if name == NodeColumn {
		a.usesNode = true
		if _, ok := sc.sources[alias]; !ok {
			return invalid("unknown table %q in %s.%s", alias, alias, name)
		}
		return nil
	}
	table, err := sc.qualified(a.cat, alias, name)
	if err != nil {
		return err
	}
	if table != "" {
		a.need(table, name)
	}
	return nil
}

// Parse checks sql: one read-only SELECT (or UNION ALL of SELECTs) over the
// SynDB tables, in ClickHouse's dialect, with allowlisted functions and
// settings only.
func Parse(sql string, cat Catalog, opts Options) (*Parsed, error) {
	text := strings.TrimSpace(sql)
	text = strings.TrimSpace(strings.TrimSuffix(text, ";"))
	switch {
	case text == "":
		return nil, invalid("empty query")
	case len(text) > 64<<10:
		return nil, invalid("query of %d bytes, at most 64 KiB", len(text))
	case !utf8.ValidString(text):
		return nil, invalid("the query is not valid UTF-8")
	}
	if err := refuseText(text); err != nil {
		return nil, err
	}
	q, err := parseSelect(text)
	if err != nil {
		return nil, err
	}
	scope := opts.Scope
	if scope == "" {
		scope = ScopeNode
	}
	if scope != ScopeNode && scope != ScopeFleet {
		return nil, invalid("scope %q: use node or fleet", scope)
	}
	p := &Parsed{scope: scope, Limit: opts.MaxRows}
	a := newAnalysis(cat)
	settings, err := checkSettings(q, opts)
	if err != nil {
		return nil, err
	}
	for part := q; part != nil; part = part.UnionAll {
		pt, err := analyse(a, part, opts.MaxRows)
		if err != nil {
			return nil, err
		}
		p.parts = append(p.parts, pt)
		p.Aggregate = p.Aggregate || pt.aggregate
		p.Truncated = p.Truncated || pt.truncated
	}
	p.Limit, p.Capped = p.parts[0].limit, p.parts[0].capped
	if len(p.parts) > 1 {
		p.Limit, p.Capped = opts.MaxRows, true
		if err := sameShape(p.parts); err != nil {
			return nil, err
		}
	}
	for t := range a.tables {
		p.Tables = append(p.Tables, t)
	}
	slices.Sort(p.Tables)
	p.MinSchema, p.joins, p.usesNode, p.cat, p.used = a.minSchema, a.joins, a.usesNode, cat, a.used
	p.Settings = settings
	// Compiling once for a stand-in node finds what only the merge query
	// can tell (a column neither grouped nor aggregated).
	if _, err := p.Plan([]Target{{Name: "check", Addr: "127.0.0.1:1", Database: "syndb"}}); err != nil {
		return nil, err
	}
	if p.joins {
		// Text settings: ClickHouse 18.16's protocol carries numbers only.
		p.textSettings = append(p.textSettings, "join_default_strictness = 'ALL'")
		if scope == ScopeFleet {
			rows := opts.MaxJoinRows
			if rows <= 0 {
				rows = 1_000_000
			}
			p.Settings["max_rows_in_join"] = rows
			p.textSettings = append(p.textSettings, "join_overflow_mode = 'throw'")
		}
	}
	return p, nil
}

// parseSelect parses text as one SELECT statement.
func parseSelect(text string) (q *chp.SelectQuery, err error) {
	defer func() {
		if r := recover(); r != nil {
			q, err = nil, invalid("cannot parse the query")
		}
	}()
	marked, nulls := markNulls(text)
	stmts, err := chp.NewParser(marked).ParseStmts()
	if err != nil {
		if nulls > 0 {
			// Say what the parser finds wrong with the query as written.
			if _, oerr := chp.NewParser(text).ParseStmts(); oerr != nil {
				err = oerr
			}
		}
		return nil, invalid("cannot parse: %s", firstLine(err.Error()))
	}
	if len(stmts) != 1 {
		return nil, invalid("one statement only")
	}
	q, ok := stmts[0].(*chp.SelectQuery)
	if !ok {
		return nil, invalid("only SELECT is allowed, got %s", statementKind(stmts[0]))
	}
	if err := unmarkNulls(q, nulls); err != nil {
		return nil, err
	}
	return q, nil
}

// refuseText gives the reason for what the parser itself would refuse
// with a bare syntax error.
func refuseText(text string) error {
	if err := checkLexical(text); err != nil {
		return err
	}
	if intoOutfileRe.MatchString(text) {
		return invalid("INTO OUTFILE is not allowed: the API returns the result")
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func statementKind(stmt chp.Expr) string {
	s := strings.Fields(stmt.String())
	if len(s) == 0 {
		return "another statement"
	}
	return strings.ToUpper(s[0])
}

// checkIdent refuses a name the compiler will not print: quotes,
// backslashes and control characters, and the compiler's own names.
func checkIdent(s string) error {
	if s == "" || !utf8.ValidString(s) {
		return invalid("name %q is not valid", s)
	}
	for _, r := range s {
		if r == '\\' || r == '`' || r == '\'' || r == '"' || !unicode.IsPrint(r) {
			return invalid("name %q holds %q: names take letters, digits, spaces and punctuation other than quotes and backslashes", s, r)
		}
	}
	l := strings.ToLower(s)
	if forbiddenWords[l] || strings.HasPrefix(l, internalPrefix) {
		return invalid("%q cannot be used as a name", s)
	}
	return nil
}

// checkLexical refuses what the parser could not finish reading: an
// unterminated comment or quote (on which it would not return).
func checkLexical(text string) error {
	for i := 0; i < len(text); i++ {
		switch c := text[i]; {
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for ; j < len(text); j++ {
				if text[j] == '\\' {
					// The parser and ClickHouse disagree on what a
					// backslash escapes inside names: none is read.
					return invalid("backslashes in quoted names and strings are not supported")
				}
				if text[j] == c {
					if j+1 < len(text) && text[j+1] == c {
						j++
						continue
					}
					break
				}
			}
			if j >= len(text) {
				return invalid("unterminated %c at byte %d", c, i)
			}
			i = j
		case c == '-' && strings.HasPrefix(text[i:], "--"), c == '#':
			for i < len(text) && text[i] != '\n' {
				i++
			}
		case c == '/' && strings.HasPrefix(text[i:], "/*"):
			end := strings.Index(text[i+2:], "*/")
			if end < 0 {
				return invalid("unterminated comment at byte %d", i)
			}
			i += end + 3
		}
	}
	return nil
}

var intoOutfileRe = regexp.MustCompile(`(?i)\binto\s+outfile\b`)

// internalPrefix starts the names the compiler gives its own columns.
const internalPrefix = "_syndb_"

// Scope is where the query's joins run.
func (p *Parsed) Scope() Scope { return p.scope }

// WithLimit returns a copy of p that reads at most n rows (n = 0 reads
// none: the result's columns and types only).
func (p *Parsed) WithLimit(n int) *Parsed {
	out := *p
	out.parts = make([]*part, len(p.parts))
	for i, pt := range p.parts {
		c := *pt
		c.limit, c.offset = min(c.limit, n), 0
		out.parts[i] = &c
	}
	out.Limit = min(p.Limit, n)
	return &out
}

// sameShape refuses a UNION ALL whose parts answer in different shapes:
// another number of columns, or node rows beside groups.
func sameShape(parts []*part) error {
	width := func(pt *part) int {
		n := len(pt.items)
		if !pt.aggregate && pt.addsNode() {
			n++
		}
		return n
	}
	first := parts[0]
	for _, pt := range parts[1:] {
		if width(pt) != width(first) {
			return invalid("the parts of UNION ALL answer %d and %d columns", width(first), width(pt))
		}
		if (!pt.aggregate && pt.addsNode()) != (!first.aggregate && first.addsNode()) {
			return invalid("UNION ALL of node rows (which carry %s) and groups or DISTINCT rows is not supported", NodeColumn)
		}
	}
	return nil
}
