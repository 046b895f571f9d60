package fedsql

import (
	"regexp"
	"slices"
	"strings"

	chp "github.com/AfterShip/clickhouse-sql-parser/parser"
)

// printer prints a syntax tree as the ClickHouse text the compiler sends,
// and refuses, as it goes, every node, name and function the federation
// does not compile: the printer is the allowlist. It prints the user's
// operators in the order and grouping they were written (the parser's own
// tree may bind a lambda's arrow tighter than ClickHouse does), so
// ClickHouse reads the text as the user meant it.
type printer struct {
	a  *analysis
	sc *scope
	// sub, when set, replaces a whole expression: the hub's merge query
	// reads the nodes' partial results instead of the rows.
	sub func(e chp.Expr) (string, bool, error)
	// from prints a SynDB table the query reads, under its alias; joined
	// numbers the right side of a JOIN in node scope (0 otherwise), whose
	// columns cols (and using, the USING keys, under their own names)
	// travel under joinedName.
	from func(table, alias string, joined int, cols []string) (string, error)
	// using are the USING keys of the join whose right side is printed.
	using []string
	// global prints IN (subquery) and JOIN as GLOBAL: the hub evaluates
	// the right side and ships it to the node with the query.
	global bool
	// top is set for the outermost SELECT, the one that may read _node.
	top         bool
	depth       int
	lambda      int  // lambdas being printed
	inAggregate bool // an aggregate's arguments are being printed
	// fleetLimit, when set, is the outermost SELECT's offset and row cap.
	fleetLimit *[2]int
	// prependNode puts _node first in the outermost select list.
	prependNode bool
}

// MaxDepth bounds how deeply the query's expressions and subqueries nest.
// ClickHouse parses and analyses a query recursively; a deep one (1,000
// nested CASE) overflows its stack, so it is refused before ClickHouse sees it.
const MaxDepth = 64

func (pr *printer) enter() (func(), error) {
	pr.depth++
	if pr.depth > MaxDepth {
		pr.depth--
		return nil, invalid("expressions nest more than %d deep", MaxDepth)
	}
	return func() { pr.depth-- }, nil
}

func (pr *printer) expr(e chp.Expr) (string, error) {
	leave, err := pr.enter()
	if err != nil {
		return "", err
	}
	defer leave()
	if pr.sub != nil {
		if s, ok, err := pr.sub(e); err != nil || ok {
			return s, err
		}
	}
	switch n := e.(type) {
	case *chp.Ident:
		return pr.ident(n)
	case *chp.Path:
		if len(n.Fields) != 2 {
			return "", invalid("name %s is not supported", n.String())
		}
		return pr.qualified(n.Fields[0], n.Fields[1])
	case *chp.NestedIdentifier:
		if n.DotIdent == nil {
			return pr.ident(n.Ident)
		}
		return pr.qualified(n.Ident, n.DotIdent)
	case *chp.NumberLiteral:
		if !numberRe.MatchString(n.Literal) {
			return "", invalid("number %q is not supported", n.Literal)
		}
		return n.Literal, nil
	case *chp.StringLiteral:
		return stringLiteral(n.Literal)
	case *chp.NullLiteral:
		return "NULL", nil
	case *chp.FunctionExpr:
		return pr.function(n)
	case *chp.ExtractExpr:
		return pr.extract(n)
	case *chp.ColumnExpr:
		if n.Alias != nil {
			return "", invalid("aliases inside expressions are not supported (%s): alias the select item", n.Alias.Name)
		}
		return pr.expr(n.Expr)
	case *chp.BinaryOperation:
		return pr.binary(n)
	case *chp.NotExpr:
		return pr.wrap("NOT ", n.Expr, "")
	case *chp.NegateExpr:
		return pr.wrap("-(", n.Expr, ")")
	case *chp.UnaryExpr:
		if k := string(n.Kind); k == "-" || k == "+" {
			return pr.wrap(k+"(", n.Expr, ")")
		}
		return "", invalid("operator %s is not supported", n.Kind)
	case *chp.IsNullExpr:
		return pr.wrap("", n.Expr, " IS NULL")
	case *chp.IsNotNullExpr:
		return pr.wrap("", n.Expr, " IS NOT NULL")
	case *chp.BetweenClause:
		return pr.list("", []chp.Expr{n.Expr, n.Between, n.And}, []string{" BETWEEN ", " AND "}, "")
	case *chp.TernaryOperation:
		return pr.list("", []chp.Expr{n.Condition, n.TrueExpr, n.FalseExpr}, []string{" ? ", " : "}, "")
	case *chp.CaseExpr:
		return pr.caseExpr(n)
	case *chp.CastExpr:
		return pr.cast(n)
	case *chp.IntervalExpr:
		if n.Unit == nil || !intervalUnits[strings.ToLower(n.Unit.Name)] {
			return "", invalid("interval unit %s is not supported", n.String())
		}
		return pr.wrap("INTERVAL ", n.Expr, " "+strings.ToUpper(n.Unit.Name))
	case *chp.IndexOperation:
		return pr.index(n)
	case *chp.ArrayParamList:
		return pr.items("[", n.Items, "]")
	case *chp.ParamExprList:
		if n.ColumnArgList != nil {
			return "", invalid("%s is not supported", n.String())
		}
		return pr.items("(", n.Items, ")")
	case *chp.ColumnExprList:
		return pr.items("(", n, ")")
	case *chp.SubQuery:
		if pr.from == nil {
			return "", invalid("subqueries in a grouped query's select list, HAVING or ORDER BY are not supported: filter with IN in WHERE, or join")
		}
		s, err := pr.subquery(n.Select)
		if err != nil {
			return "", err
		}
		return "(" + s + ")", nil
	case *chp.QueryParam, *chp.PlaceHolder, *chp.TypedPlaceholder:
		return "", invalid("placeholders are not supported: write the value into the query")
	case *chp.MapLiteral:
		return "", invalid("map literals are not supported")
	case *chp.WindowFunctionExpr:
		return "", invalid("window functions are not supported")
	}
	return "", invalid("%s is not supported", describe(e))
}

func describe(e chp.Expr) string {
	s := e.String()
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return strings.TrimSpace(s)
}

func (pr *printer) wrap(before string, e chp.Expr, after string) (string, error) {
	s, err := pr.expr(e)
	if err != nil {
		return "", err
	}
	return before + s + after, nil
}

func (pr *printer) list(before string, es []chp.Expr, seps []string, after string) (string, error) {
	var b strings.Builder
	b.WriteString(before)
	for i, e := range es {
		if i > 0 {
			b.WriteString(seps[i-1])
		}
		s, err := pr.expr(e)
		if err != nil {
			return "", err
		}
		b.WriteString(s)
	}
	b.WriteString(after)
	return b.String(), nil
}

func (pr *printer) items(open string, l *chp.ColumnExprList, closing string) (string, error) {
	if l == nil {
		return open + closing, nil
	}
	if l.HasDistinct {
		return "", invalid("DISTINCT is supported only inside count(DISTINCT …)")
	}
	seps := make([]string, max(0, len(l.Items)-1))
	for i := range seps {
		seps[i] = ", "
	}
	return pr.list(open, l.Items, seps, closing)
}

func (pr *printer) ident(n *chp.Ident) (string, error) {
	if isNull(n) {
		return "NULL", nil
	}
	if n.Name == "*" {
		return "", invalid("* is allowed only as a whole select item")
	}
	if err := checkIdent(n.Name); err != nil {
		return "", err
	}
	if n.Name == NodeColumn && !pr.top && pr.a != nil && len(pr.sc.holders(pr.a.cat, n.Name)) == 0 {
		return "", invalid("%s can be read only by the outermost query", NodeColumn)
	}
	if pr.a != nil {
		if err := pr.a.column(pr.sc, n.Name); err != nil {
			return "", err
		}
	}
	if pr.global && pr.sc.lambda[n.Name] == 0 && !pr.sc.names[n.Name] {
		if h := pr.sc.holders(pr.a.cat, n.Name); len(h) == 1 && pr.sc.sources[h[0]].joined > 0 && !slices.Contains(pr.using, n.Name) {
			return joinedName(pr.sc.sources[h[0]].joined, n.Name), nil
		}
	}
	return quoteIdent(n.Name), nil
}

// isNull reports the NULL literal, which the parser reads as a name.
func isNull(n *chp.Ident) bool {
	return n.QuoteType == chp.Unquoted && strings.EqualFold(n.Name, "null")
}

func (pr *printer) qualified(table, col *chp.Ident) (string, error) {
	if col.Name == "*" {
		return "", invalid("%s.* is allowed only as a whole select item", table.Name)
	}
	for _, id := range []*chp.Ident{table, col} {
		if err := checkIdent(id.Name); err != nil {
			return "", err
		}
	}
	if pr.a != nil {
		if err := pr.a.qualified(pr.sc, table.Name, col.Name); err != nil {
			return "", err
		}
	}
	if src, ok := pr.sc.sources[table.Name]; ok && pr.global {
		// A node reads its tables under no alias: the left table's columns
		// by their own names, a joined side's under names of their own.
		if src.joined > 0 {
			return joinedName(src.joined, col.Name), nil
		}
		if pr.sc.names[col.Name] {
			return "", invalid("the alias %q hides column %s.%s: choose another alias", col.Name, table.Name, col.Name)
		}
		return quoteIdent(col.Name), nil
	}
	return quoteIdent(table.Name) + "." + quoteIdent(col.Name), nil
}

func (pr *printer) binary(n *chp.BinaryOperation) (string, error) {
	op := strings.ToUpper(string(n.Operation))
	if op == "->" {
		if pr.lambda == 0 {
			return "", invalid("a lambda (x -> …) is allowed only as a function's argument")
		}
		return pr.lambdaArrow(n)
	}
	if n.HasGlobal {
		return "", invalid("GLOBAL is chosen by the federation, not the query")
	}
	if !binaryOps[op] {
		return "", invalid("operator %s is not supported", op)
	}
	if op == "IN" || op == "NOT IN" {
		if err := checkInSet(n.RightExpr); err != nil {
			return "", err
		}
	}
	left, err := pr.expr(n.LeftExpr)
	if err != nil {
		return "", err
	}
	right, err := pr.expr(n.RightExpr)
	if err != nil {
		return "", err
	}
	if (op == "IN" || op == "NOT IN") && pr.global {
		if _, ok := n.RightExpr.(*chp.SubQuery); ok {
			op = "GLOBAL " + op
		}
	}
	return left + " " + op + " " + right, nil
}

// checkInSet refuses the right side of IN that ClickHouse could read as a
// table: a bare or qualified name, alone or in parentheses. A list of
// values, an array or a subquery is what IN takes.
func checkInSet(e chp.Expr) error {
	if p, ok := e.(*chp.ParamExprList); ok && p.Items != nil && len(p.Items.Items) == 1 {
		e = unwrap(p.Items.Items)[0]
	}
	switch e.(type) {
	case *chp.Ident, *chp.Path, *chp.NestedIdentifier:
		return invalid("IN takes a list of values or a subquery, not a name (%s)", describe(e))
	}
	return nil
}

var binaryOps = setOf("+", "-", "*", "/", "%", "=", "==", "!=", "<>", "<", ">", "<=", ">=", "AND", "OR",
	"LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE", "IN", "NOT IN", "||")

func (pr *printer) caseExpr(n *chp.CaseExpr) (string, error) {
	var b strings.Builder
	b.WriteString("CASE")
	if n.Expr != nil {
		s, err := pr.expr(n.Expr)
		if err != nil {
			return "", err
		}
		b.WriteString(" " + s)
	}
	for _, w := range n.Whens {
		s, err := pr.list(" WHEN ", []chp.Expr{w.When, w.Then}, []string{" THEN "}, "")
		if err != nil {
			return "", err
		}
		b.WriteString(s)
		if w.Else != nil {
			return "", invalid("ELSE inside WHEN is not supported")
		}
	}
	if n.Else != nil {
		s, err := pr.expr(n.Else)
		if err != nil {
			return "", err
		}
		b.WriteString(" ELSE " + s)
	}
	b.WriteString(" END")
	return b.String(), nil
}

// extract prints extract(haystack, pattern), which the parser reads apart
// from other calls, as it reads the SQL EXTRACT(unit FROM date).
func (pr *printer) extract(n *chp.ExtractExpr) (string, error) {
	for _, p := range n.Parameters {
		if _, ok := p.(*chp.IntervalFrom); ok {
			return "", invalid("EXTRACT(unit FROM …) is not supported: use toYear, toMonth, toDayOfMonth, toHour …")
		}
	}
	if len(n.Parameters) != 2 {
		return "", invalid("extract takes a string and a regular expression")
	}
	s, err := pr.exprList(n.Parameters)
	if err != nil {
		return "", err
	}
	return "extract(" + s + ")", nil
}

// typeRe is what a CAST may name: ClickHouse type names with simple
// arguments (Nullable(Float64), Decimal(10, 2), FixedString(16)).
var typeRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*(\([A-Za-z0-9_, ]*(\([A-Za-z0-9_, ]*\))?\))?$`)

func (pr *printer) cast(n *chp.CastExpr) (string, error) {
	s, err := pr.expr(n.Expr)
	if err != nil {
		return "", err
	}
	var typ string
	if lit, ok := n.AsType.(*chp.StringLiteral); ok {
		typ = lit.Literal
	} else if n.AsType != nil {
		typ = n.AsType.String()
	}
	if !typeRe.MatchString(typ) || !knownType(typ) {
		return "", invalid("CAST to %q is not supported", typ)
	}
	// CAST(x, 'T') is how ClickHouse itself reads CAST(x AS T): the type is
	// a string, which the compiled statement's check does not take for a
	// function call, as it would Nullable( or Decimal(.
	return "CAST(" + s + ", " + quote(typ) + ")", nil
}

// typeFamilies are the ClickHouse types a CAST may name (lower case).
var typeFamilies = setOf("uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float32",
	"float64", "string", "fixedstring", "date", "datetime", "uuid", "decimal", "decimal32", "decimal64",
	"decimal128", "nullable", "array", "tuple", "nothing")

// knownType reports whether every name in typ, a typeRe match, is a type
// of typeFamilies (the rest are numbers).
func knownType(typ string) bool {
	for _, w := range strings.FieldsFunc(typ, func(r rune) bool { return r == '(' || r == ')' || r == ',' || r == ' ' }) {
		if !typeFamilies[strings.ToLower(w)] && strings.Trim(w, "0123456789") != "" {
			return false
		}
	}
	return true
}

func (pr *printer) index(n *chp.IndexOperation) (string, error) {
	obj, err := pr.expr(n.Object)
	if err != nil {
		return "", err
	}
	if string(n.Operation) == "." {
		lit, ok := n.Index.(*chp.NumberLiteral)
		if !ok || !positiveRe.MatchString(lit.Literal) {
			return "", invalid("tuple element %s is not supported", n.String())
		}
		return obj + "." + lit.Literal, nil
	}
	idx, err := pr.expr(n.Index)
	if err != nil {
		return "", err
	}
	return obj + "[" + idx + "]", nil
}

var (
	numberRe   = regexp.MustCompile(`^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$|^0[xX][0-9a-fA-F]+$`)
	positiveRe = regexp.MustCompile(`^[1-9][0-9]{0,5}$`)
	identRe    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// stringLiteral re-quotes a string the user wrote (raw, as the parser read
// it between quotes) the one way every ClickHouse reads alike.
func stringLiteral(raw string) (string, error) {
	if strings.ContainsRune(raw, '\\') {
		return "", invalid("backslashes in string literals are not supported")
	}
	return quote(strings.ReplaceAll(raw, "''", "'")), nil
}

// quote makes a ClickHouse string literal.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(s) + "'"
}

// quoteIdent prints a checked name: bare when it is a plain word that is
// not a keyword, in backticks otherwise.
func quoteIdent(s string) string {
	if identRe.MatchString(s) && !notFunctions[strings.ToLower(s)] && !keywords[strings.ToLower(s)] {
		return s
	}
	return "`" + s + "`"
}

var keywords = setOf("join", "global", "prewhere", "with", "array", "inner", "left", "right", "full", "cross",
	"any", "using", "final", "sample", "settings", "format", "into", "outfile", "union", "except", "intersect",
	"cast", "true", "false", "if", "exists", "over", "window", "qualify", "inf", "infinity", "nan")
