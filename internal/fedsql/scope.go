package fedsql

import (
	"slices"
	"strconv"
	"strings"

	chp "github.com/AfterShip/clickhouse-sql-parser/parser"
)

// source is one table or subquery in a SELECT's FROM, under the name the
// query reads it by.
type source struct {
	table string          // the SynDB table, or "" for a subquery
	cols  map[string]bool // a subquery's output names (nil: unknown)
	// nullable is the nullness of a subquery's output columns, by name.
	nullable map[string]nullness
	// joined numbers a source on the right of a JOIN that node scope
	// ships to the node (GLOBAL JOIN): the node sees it under no alias, so
	// its columns travel under names of their own (joinedName).
	joined int
}

// joinedName is the name column col of the joined source n travels under.
func joinedName(n int, col string) string {
	return internalPrefix + "j" + strconv.Itoa(n) + "_" + col
}

// holders lists the sources that have an unqualified column name.
func (s *scope) holders(cat Catalog, name string) []string {
	var out []string
	for _, alias := range s.order {
		src := s.sources[alias]
		if src.table != "" {
			if _, ok := cat.versions[src.table][name]; ok {
				out = append(out, alias)
			}
		} else if src.cols[name] {
			out = append(out, alias)
		}
	}
	return out
}

// scope is what names mean inside one SELECT: its sources, the aliases of
// its select list, WITH and ARRAY JOIN, and the parameters of the lambdas
// being printed. ClickHouse's aliases are global to their SELECT, so an
// alias may be used before the expression that defines it.
type scope struct {
	sources map[string]source
	order   []string // source names in FROM order
	names   map[string]bool
	lambda  map[string]int
	// defs are what the aliases, WITH names and ARRAY JOIN aliases of
	// names stand for; resolving are those whose nullness is being told,
	// known those whose nullness is told (typer.name).
	defs      map[string]aliasDef
	resolving map[string]bool
	known     map[string]nullness
	// merge is set in the hub's merge query, where only group keys,
	// aliases and aggregates can be read.
	merge bool
}

// aliasDef is the expression an alias names; element is set for an ARRAY
// JOIN alias, which names an element of the array expr.
type aliasDef struct {
	expr    chp.Expr
	element bool
}

func newScope() *scope {
	return &scope{sources: map[string]source{}, names: map[string]bool{}, lambda: map[string]int{},
		defs: map[string]aliasDef{}, resolving: map[string]bool{}, known: map[string]nullness{}}
}

// define makes name an alias of e in s (element: of e's elements).
func (s *scope) define(name string, e chp.Expr, element bool) {
	s.names[name] = true
	s.defs[name] = aliasDef{expr: e, element: element}
}

func (s *scope) addSource(name string, src source) error {
	if _, dup := s.sources[name]; dup {
		return invalid("the name %q is used for two tables: give each an alias of its own", name)
	}
	s.sources[name] = src
	s.order = append(s.order, name)
	return nil
}

// bind makes lambda parameters visible while their lambda is printed.
func (s *scope) bind(params []string) func() {
	for _, p := range params {
		s.lambda[p]++
	}
	return func() {
		for _, p := range params {
			if s.lambda[p]--; s.lambda[p] == 0 {
				delete(s.lambda, p)
			}
		}
	}
}

// column resolves an unqualified name: a lambda parameter, an alias,
// _node, or a column of one of the sources. It returns the SynDB tables
// that hold the column (for its schema version), or an error naming what
// is known.
func (s *scope) column(cat Catalog, name string) ([]string, error) {
	if s.lambda[name] > 0 || s.names[name] || name == NodeColumn {
		return nil, nil
	}
	var tables []string
	found := false
	for _, alias := range s.order {
		src := s.sources[alias]
		switch {
		case src.table != "":
			if _, ok := cat.versions[src.table][name]; ok {
				tables = append(tables, src.table)
				found = true
			}
		case src.cols[name]:
			found = true
		}
	}
	if !found && s.merge {
		return nil, invalid("column %q must be in GROUP BY or inside an aggregate function", name)
	}
	if !found {
		return nil, invalid("unknown column %q (reading %s)", name, s.describe())
	}
	return tables, nil
}

// qualified resolves alias.name.
func (s *scope) qualified(cat Catalog, alias, name string) (string, error) {
	src, ok := s.sources[alias]
	if !ok && s.merge {
		return "", invalid("column %s.%s must be in GROUP BY or inside an aggregate function", alias, name)
	}
	if !ok {
		return "", invalid("unknown table %q in %s.%s", alias, alias, name)
	}
	if src.table == "" {
		if !src.cols[name] {
			return "", invalid("subquery %s has no column %q", alias, name)
		}
		return "", nil
	}
	if _, ok := cat.versions[src.table][name]; !ok {
		return "", invalid("table %s has no column %q", src.table, name)
	}
	return src.table, nil
}

func (s *scope) describe() string {
	var parts []string
	for _, a := range s.order {
		if t := s.sources[a].table; t != "" && t != a {
			parts = append(parts, t+" AS "+a)
		} else if t != "" {
			parts = append(parts, t)
		} else {
			parts = append(parts, "subquery "+a)
		}
	}
	if len(parts) == 0 {
		return "no table"
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}
