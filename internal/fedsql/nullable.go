package fedsql

import (
	"strconv"
	"strings"

	chp "github.com/AfterShip/clickhouse-sql-parser/parser"
)

// nullness is what the compiler knows of an expression's ClickHouse type:
// whether it is Nullable (top), and, for an array or a tuple (never
// Nullable themselves), whether an element may be (inner).
type nullness struct{ top, inner bool }

// nullable reports whether ClickHouse 18.16 types e, read in sc, Nullable:
// it reads a Nullable column or holds NULL, through functions that keep a
// Nullable argument's Nullable (most do), or is one that makes NULL
// (nullIf, toNullable, …OrNull, CASE without ELSE, CAST to Nullable). What
// the compiler cannot tell (a subquery's column, an alias) is not.
func (c *compiler) nullable(sc *scope, e chp.Expr) bool { return c.nullness(sc, e).top }

// The functions whose answer's Nullable is not their arguments' (each set
// by lower-case name, measured on 18.16).
var (
	// neverNull answer no NULL of any argument.
	neverNull = setOf("isnull", "isnotnull", "assumenotnull", "totypename", "or", "has", "hasall", "hasany",
		"indexof", "countequal", "arrayuniq", "arraycount", "arrayexists", "arrayall", "arrayfirstindex")
	// makesNull may answer NULL of any argument.
	makesNull = setOf("nullif", "tonullable")
	// arrayAnswer answer an array, whose elements are Nullable where their
	// arguments' are.
	arrayAnswer = setOf("array", "tuple", "arrayconcat", "arrayslice", "arraydistinct", "arrayenumerate",
		"arrayreverse", "arraypushback", "arraypushfront", "range", "arraymap", "arrayfilter", "arraysort",
		"arrayreversesort", "arraycumsum", "arraycompact", "arrayzip", "arrayflatten", "arrayintersect",
		"arrayresize", "arraypopback", "arraypopfront", "emptyarrayuint32", "emptyarrayfloat64",
		"arraydifference", "arrayenumerateuniq", "splitbychar", "splitbystring")
	// elementAnswer answer an element of an array argument.
	elementAnswer = setOf("arrayelement", "arrayjoin", "arrayfirst", "arraymin", "arraymax", "arraysum",
		"arrayavg", "arrayproduct")
)

func (c *compiler) nullness(sc *scope, e chp.Expr) nullness {
	anyNull := func(es ...chp.Expr) nullness {
		var out nullness
		for _, x := range es {
			if x != nil && c.nullness(sc, x).top {
				out.top = true
			}
		}
		return out
	}
	switch n := e.(type) {
	case *chp.ColumnExpr:
		return c.nullness(sc, n.Expr)
	case *chp.NullLiteral:
		return nullness{top: true}
	case *chp.Ident:
		return nullness{top: isNull(n) || c.nullableColumn(sc, n.Name)}
	case *chp.Path:
		if len(n.Fields) == 2 {
			return nullness{top: c.nullableQualified(sc, n.Fields[0].Name, n.Fields[1].Name)}
		}
	case *chp.NestedIdentifier:
		if n.DotIdent == nil {
			return c.nullness(sc, n.Ident)
		}
		return nullness{top: c.nullableQualified(sc, n.Ident.Name, n.DotIdent.Name)}
	case *chp.FunctionExpr:
		return c.callNullness(sc, readCall(n))
	case *chp.ExtractExpr:
		return anyNull(n.Parameters...)
	case *chp.BinaryOperation:
		switch strings.ToUpper(string(n.Operation)) {
		case "IN", "NOT IN", "OR":
			return nullness{}
		case "->":
			// A lambda: what its body answers, for each element.
			return c.nullness(sc, n.RightExpr)
		}
		return anyNull(n.LeftExpr, n.RightExpr)
	case *chp.NotExpr:
		return anyNull(n.Expr)
	case *chp.NegateExpr:
		return anyNull(n.Expr)
	case *chp.UnaryExpr:
		return anyNull(n.Expr)
	case *chp.BetweenClause:
		return anyNull(n.Expr, n.Between, n.And)
	case *chp.TernaryOperation:
		return anyNull(n.Condition, n.TrueExpr, n.FalseExpr)
	case *chp.CaseExpr:
		if n.Else == nil {
			return nullness{top: true}
		}
		es := []chp.Expr{n.Expr, n.Else}
		for _, w := range n.Whens {
			es = append(es, w.When, w.Then)
		}
		return anyNull(es...)
	case *chp.CastExpr:
		typ := ""
		if lit, ok := n.AsType.(*chp.StringLiteral); ok {
			typ = lit.Literal
		} else if n.AsType != nil {
			typ = n.AsType.String()
		}
		return nullness{top: strings.HasPrefix(strings.ToLower(strings.TrimSpace(typ)), "nullable(")}
	case *chp.IndexOperation:
		return nullness{top: c.element(sc, n.Object, n.Index)}
	case *chp.ArrayParamList:
		if n.Items != nil {
			return c.container(sc, n.Items.Items)
		}
	case *chp.ParamExprList:
		if n.Items != nil {
			if len(n.Items.Items) == 1 {
				return c.nullness(sc, n.Items.Items[0])
			}
			return c.container(sc, n.Items.Items)
		}
	}
	return nullness{}
}

// container is the nullness of an array or tuple of items.
func (c *compiler) container(sc *scope, items []chp.Expr) nullness {
	for _, it := range items {
		if x := c.nullness(sc, it); x.top || x.inner {
			return nullness{inner: true}
		}
	}
	return nullness{}
}

// element reports whether obj[index] (or obj.index, a tuple's) may be
// NULL: the element a tuple's literal names, else any element.
func (c *compiler) element(sc *scope, obj, index chp.Expr) bool {
	if lit, ok := index.(*chp.NumberLiteral); ok {
		var items []chp.Expr
		switch o := obj.(type) {
		case *chp.ParamExprList:
			if o.Items != nil && len(o.Items.Items) > 1 {
				items = o.Items.Items
			}
		case *chp.FunctionExpr:
			if cl := readCall(o); strings.EqualFold(cl.name, "tuple") {
				items = cl.args
			}
		}
		if k, err := strconv.Atoi(lit.Literal); err == nil && k >= 1 && k <= len(items) {
			return c.nullness(sc, items[k-1]).top
		}
	}
	return c.nullness(sc, obj).inner || c.nullness(sc, index).top
}

// callNullness is the nullness of a function's answer.
func (c *compiler) callNullness(sc *scope, cl call) nullness {
	name := strings.ToLower(cl.name)
	top := func(a chp.Expr) bool { return c.nullness(sc, a).top }
	switch {
	case neverNull[name]:
		return nullness{}
	case makesNull[name] || strings.HasSuffix(name, "ornull"):
		return nullness{top: true}
	case name == "coalesce":
		// Nullable unless an argument (but a NULL) is not.
		for _, a := range cl.args {
			if !isNullLiteral(a) && !top(a) {
				return nullness{}
			}
		}
		return nullness{top: true}
	case name == "ifnull":
		if len(cl.args) != 2 {
			return nullness{}
		}
		return nullness{top: (isNullLiteral(cl.args[0]) || top(cl.args[0])) && top(cl.args[1])}
	case name == "tupleelement":
		if len(cl.args) == 2 {
			return nullness{top: c.element(sc, cl.args[0], cl.args[1])}
		}
	case arrayAnswer[name]:
		return c.container(sc, cl.args)
	case elementAnswer[name]:
		for _, a := range cl.args {
			if x := c.nullness(sc, a); x.inner || x.top {
				return nullness{top: true}
			}
		}
		return nullness{}
	}
	for _, a := range cl.args {
		if top(a) {
			return nullness{top: true}
		}
	}
	return nullness{}
}

// isNullLiteral reports the NULL literal, however the parser read it.
func isNullLiteral(e chp.Expr) bool {
	if ce, ok := e.(*chp.ColumnExpr); ok && ce.Alias == nil {
		e = ce.Expr
	}
	switch n := e.(type) {
	case *chp.NullLiteral:
		return true
	case *chp.Ident:
		return isNull(n)
	}
	return false
}

// nullableQualified reports whether alias.name, read in sc, is a Nullable
// column of a SynDB table.
func (c *compiler) nullableQualified(sc *scope, alias, name string) bool {
	src, ok := sc.sources[alias]
	return ok && src.table != "" && c.p.cat.nullable[src.table][name]
}
