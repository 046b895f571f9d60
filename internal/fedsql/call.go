package fedsql

import (
	"strings"

	chp "github.com/AfterShip/clickhouse-sql-parser/parser"
)

// call is a function call as the compiler reads it: its name, the
// parameters of a parametric aggregate (quantile(0.9)(x)) and its
// arguments.
type call struct {
	name     string
	params   []chp.Expr // nil unless parametric
	args     []chp.Expr
	distinct bool // count(DISTINCT x)
}

func readCall(f *chp.FunctionExpr) call {
	c := call{name: f.Name.Name}
	if f.Params == nil {
		return c
	}
	if f.Params.ColumnArgList != nil {
		if f.Params.Items != nil {
			c.params = f.Params.Items.Items
		}
		c.args = f.Params.ColumnArgList.Items
		c.distinct = f.Params.ColumnArgList.Distinct
		return c
	}
	if f.Params.Items != nil {
		c.args = f.Params.Items.Items
		c.distinct = f.Params.Items.HasDistinct
	}
	if strings.EqualFold(c.name, "count") && !c.distinct && len(c.args) == 1 && isStar(c.args[0]) {
		c.args = nil // count(*) is count()
	}
	return c
}

// isStar reports the bare * of count(*).
func isStar(e chp.Expr) bool {
	if ce, ok := e.(*chp.ColumnExpr); ok && ce.Alias == nil {
		e = ce.Expr
	}
	id, ok := e.(*chp.Ident)
	return ok && id.Name == "*"
}

func (pr *printer) function(f *chp.FunctionExpr) (string, error) {
	c := readCall(f)
	lower := strings.ToLower(c.name)
	if err := checkIdent(c.name); err != nil {
		return "", err
	}
	agg := isAggregate(lower)
	switch {
	case hasStateOrMerge(lower):
		return "", invalid("function %s: the -State and -Merge combinators are the federation's own", c.name)
	case !agg && !allowedFunctions[lower]:
		return "", invalid("function %s is not allowed", c.name)
	case c.params != nil && !agg:
		return "", invalid("function %s takes no parameters", c.name)
	case c.distinct && lower != "count":
		return "", invalid("DISTINCT inside %s is not supported: use uniqExact", c.name)
	}
	if agg {
		if pr.inAggregate {
			return "", invalid("aggregate %s inside another aggregate", c.name)
		}
		pr.inAggregate = true
		defer func() { pr.inAggregate = false }()
	}
	return pr.printCall(c.name, c)
}

// printCall prints c under name (the compiler's -State and -Merge forms
// keep the user's parameters and arguments).
func (pr *printer) printCall(name string, c call) (string, error) {
	var b strings.Builder
	b.WriteString(name)
	if c.params != nil {
		for _, p := range c.params {
			if readsColumns(p) {
				return "", invalid("parameters of %s must be constants", c.name)
			}
		}
		s, err := pr.args(c.params)
		if err != nil {
			return "", err
		}
		b.WriteString("(" + s + ")")
	}
	b.WriteString("(")
	if c.distinct {
		b.WriteString("DISTINCT ")
	}
	s, err := pr.args(c.args)
	if err != nil {
		return "", err
	}
	b.WriteString(s + ")")
	return b.String(), nil
}

// args prints a function's arguments; an argument that starts with a
// lambda's parameters (x -> …, (x, y) -> …) binds them over the whole
// argument, as ClickHouse reads it.
func (pr *printer) args(args []chp.Expr) (string, error) {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		if ce, ok := a.(*chp.ColumnExpr); ok && ce.Alias == nil {
			a = ce.Expr
		}
		params, ok, err := lambdaParams(a)
		if err != nil {
			return "", err
		}
		var s string
		if ok {
			unbind := pr.sc.bind(params)
			pr.lambda++
			s, err = pr.expr(a)
			pr.lambda--
			unbind()
		} else {
			s, err = pr.expr(a)
		}
		if err != nil {
			return "", err
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", "), nil
}

// lambdaParams finds the arrow at the left edge of e and returns the
// names before it.
func lambdaParams(e chp.Expr) ([]string, bool, error) {
	for {
		b, ok := e.(*chp.BinaryOperation)
		if !ok {
			return nil, false, nil
		}
		if string(b.Operation) != "->" {
			e = b.LeftExpr
			continue
		}
		var names []string
		var list []chp.Expr
		switch l := b.LeftExpr.(type) {
		case *chp.Ident:
			list = []chp.Expr{l}
		case *chp.ParamExprList:
			if l.Items != nil {
				list = l.Items.Items
			}
		default:
			return nil, false, invalid("a lambda's parameters must be names")
		}
		for _, it := range list {
			if ce, ok := it.(*chp.ColumnExpr); ok && ce.Alias == nil {
				it = ce.Expr
			}
			id, ok := it.(*chp.Ident)
			if !ok {
				return nil, false, invalid("a lambda's parameters must be names")
			}
			if err := checkIdent(id.Name); err != nil {
				return nil, false, err
			}
			names = append(names, id.Name)
		}
		if len(names) == 0 {
			return nil, false, invalid("a lambda needs a parameter")
		}
		return names, true, nil
	}
}

// lambda prints the arrow of a lambda whose parameters args bound.
func (pr *printer) lambdaArrow(n *chp.BinaryOperation) (string, error) {
	names, ok, err := lambdaParams(n)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", invalid("a lambda's parameters must be names")
	}
	for _, nm := range names {
		if pr.sc.lambda[nm] == 0 {
			return "", invalid("a lambda (x -> …) must start its function argument")
		}
	}
	quoted := make([]string, len(names))
	for i, nm := range names {
		quoted[i] = quoteIdent(nm)
	}
	params := quoted[0]
	if _, tuple := n.LeftExpr.(*chp.ParamExprList); tuple {
		params = "(" + strings.Join(quoted, ", ") + ")"
	}
	body, err := pr.expr(n.RightExpr)
	if err != nil {
		return "", err
	}
	return params + " -> " + body, nil
}

// star expands * and t.* into the columns they read, in table order.
func (pr *printer) star(e chp.Expr) ([]string, string, bool, error) {
	var alias string
	switch n := e.(type) {
	case *chp.Ident:
		if n.Name != "*" {
			return nil, "", false, nil
		}
		if len(pr.sc.order) != 1 {
			return nil, "", true, invalid("SELECT * reads one table: over a join or no table, list the columns")
		}
		alias = pr.sc.order[0]
	case *chp.NestedIdentifier:
		if n.DotIdent == nil || n.DotIdent.Name != "*" {
			return nil, "", false, nil
		}
		alias = n.Ident.Name
	default:
		return nil, "", false, nil
	}
	src, ok := pr.sc.sources[alias]
	if !ok {
		return nil, "", true, invalid("unknown table %q in %s.*", alias, alias)
	}
	if src.table == "" {
		return nil, "", true, invalid("* over a subquery is not supported: list the columns")
	}
	cols := pr.a.cat.columns(src.table)
	parts := make([]string, len(cols))
	qualify := len(pr.sc.order) > 1
	for i, c := range cols {
		pr.a.need(src.table, c)
		parts[i] = quoteIdent(c)
		if qualify {
			parts[i] = quoteIdent(alias) + "." + parts[i]
		}
	}
	return cols, strings.Join(parts, ", "), true, nil
}
