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
// (nullIf, toNullable, …OrNull, CASE without ELSE, CAST to Nullable). A
// name stands for what it names: a column of a SynDB table, a subquery's
// output column (Nullable where its expression is, in any part of a UNION
// ALL), an alias or a WITH name (its expression), an ARRAY JOIN alias (an
// element of its array).
func (c *compiler) nullable(sc *scope, e chp.Expr) bool { return typer{c.p.cat, sc}.nullness(e).top }

// typer tells the nullness of expressions read in sc.
type typer struct {
	cat Catalog
	sc  *scope
}

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

func (ty typer) nullness(e chp.Expr) nullness {
	anyNull := func(es ...chp.Expr) nullness {
		var out nullness
		for _, x := range es {
			if x != nil && ty.nullness(x).top {
				out.top = true
			}
		}
		return out
	}
	switch n := e.(type) {
	case *chp.ColumnExpr:
		return ty.nullness(n.Expr)
	case *chp.NullLiteral:
		return nullness{top: true}
	case *chp.Ident:
		if isNull(n) {
			return nullness{top: true}
		}
		return ty.name(n.Name)
	case *chp.Path:
		if len(n.Fields) == 2 {
			return ty.qualified(n.Fields[0].Name, n.Fields[1].Name)
		}
	case *chp.NestedIdentifier:
		if n.DotIdent == nil {
			return ty.nullness(n.Ident)
		}
		return ty.qualified(n.Ident.Name, n.DotIdent.Name)
	case *chp.FunctionExpr:
		return ty.callNullness(readCall(n))
	case *chp.ExtractExpr:
		return anyNull(n.Parameters...)
	case *chp.BinaryOperation:
		switch strings.ToUpper(string(n.Operation)) {
		case "IN", "NOT IN", "OR":
			return nullness{}
		case "->":
			// A lambda: what its body answers, for each element; its
			// parameters are not known Nullable.
			if params, ok, _ := lambdaParams(n); ok {
				defer ty.sc.bind(params)()
			}
			return ty.nullness(n.RightExpr)
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
		return nullness{top: ty.element(n.Object, n.Index)}
	case *chp.ArrayParamList:
		if n.Items != nil {
			return ty.container(n.Items.Items)
		}
	case *chp.ParamExprList:
		if n.Items != nil {
			if len(n.Items.Items) == 1 {
				return ty.nullness(n.Items.Items[0])
			}
			return ty.container(n.Items.Items)
		}
	}
	return nullness{}
}

// container is the nullness of an array or tuple of items.
func (ty typer) container(items []chp.Expr) nullness {
	for _, it := range items {
		if x := ty.nullness(it); x.top || x.inner {
			return nullness{inner: true}
		}
	}
	return nullness{}
}

// element reports whether obj[index] (or obj.index, a tuple's) may be
// NULL: the element a tuple's literal names, else any element.
func (ty typer) element(obj, index chp.Expr) bool {
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
			return ty.nullness(items[k-1]).top
		}
	}
	return ty.nullness(obj).inner || ty.nullness(index).top
}

// callNullness is the nullness of a function's answer.
func (ty typer) callNullness(cl call) nullness {
	name := strings.ToLower(cl.name)
	top := func(a chp.Expr) bool { return ty.nullness(a).top }
	switch {
	case isAggregate(name):
		return ty.aggregateNullness(cl)
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
			return nullness{top: ty.element(cl.args[0], cl.args[1])}
		}
	case arrayAnswer[name]:
		return ty.container(cl.args)
	case elementAnswer[name]:
		for _, a := range cl.args {
			if x := ty.nullness(a); x.inner || x.top {
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

// aggregateNullness is the nullness of an aggregate's answer (a
// subquery's column may be one): count without -If or DISTINCT and the
// aggregates that answer an array are never Nullable; the rest are where an
// argument is (or, through -Array, an element of one).
func (ty typer) aggregateNullness(cl call) nullness {
	name := strings.ToLower(cl.name)
	withIf, withArray := false, false
	for !aggregates[name] {
		cut := false
		for _, comb := range combinators {
			if len(name) > len(comb) && strings.HasSuffix(name, comb) {
				name, cut = strings.TrimSuffix(name, comb), true
				withIf = withIf || comb == "if"
				withArray = withArray || comb == "array"
				break
			}
		}
		if !cut {
			return nullness{}
		}
	}
	if notNullable[name] && (name != "count" || (!withIf && !cl.distinct)) {
		return nullness{}
	}
	for _, a := range cl.args {
		if x := ty.nullness(a); x.top || (withArray && x.inner) {
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

// name is the nullness of an unqualified name read in ty's scope: a
// lambda's parameter is not known Nullable; an alias or WITH name is its
// expression's, an ARRAY JOIN alias its array's element's; a column is
// Nullable where a source that holds it has it Nullable. An alias read
// inside its own expression (coalesce(x, 0) AS x) is the column. Each
// alias is told once per scope.
func (ty typer) name(name string) nullness {
	sc := ty.sc
	if sc.lambda[name] > 0 {
		return nullness{}
	}
	if def, ok := sc.defs[name]; ok && !sc.resolving[name] {
		if x, ok := sc.known[name]; ok {
			return x
		}
		sc.resolving[name] = true
		x := ty.nullness(def.expr)
		delete(sc.resolving, name)
		if def.element {
			x = nullness{top: x.inner || x.top}
		}
		// Told once: aliases of aliases would be told again at each use.
		sc.known[name] = x
		return x
	}
	if sc.names[name] && !sc.resolving[name] {
		return nullness{}
	}
	var out nullness
	for _, alias := range sc.holders(ty.cat, name) {
		x := ty.sourceNullness(sc.sources[alias], name)
		out.top, out.inner = out.top || x.top, out.inner || x.inner
	}
	return out
}

// qualified is the nullness of alias.name, read in ty's scope.
func (ty typer) qualified(alias, name string) nullness {
	src, ok := ty.sc.sources[alias]
	if !ok {
		return nullness{}
	}
	return ty.sourceNullness(src, name)
}

// sourceNullness is the nullness of src's column name: a SynDB table's by
// the catalog's types, a subquery's by its expression.
func (ty typer) sourceNullness(src source, name string) nullness {
	if src.table != "" {
		return nullness{top: ty.cat.nullable[src.table][name]}
	}
	return src.nullable[name]
}
