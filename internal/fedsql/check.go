package fedsql

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/xwb1989/sqlparser"
)

// checker walks a query's expressions and refuses every node the federation
// does not compile: only the node types, operators and functions listed here
// reach the printed statement.
type checker struct {
	p       *Parsed
	cols    map[string]int
	table   string
	alias   string
	aliases map[string]bool
}

func (c *checker) visit(node sqlparser.SQLNode) (bool, error) {
	switch n := node.(type) {
	case sqlparser.SelectExprs, sqlparser.Exprs, sqlparser.GroupBy, sqlparser.OrderBy, *sqlparser.Order,
		*sqlparser.Where, *sqlparser.AliasedExpr, *sqlparser.AndExpr, *sqlparser.OrExpr, *sqlparser.NotExpr,
		*sqlparser.ParenExpr, *sqlparser.RangeCond, *sqlparser.CaseExpr, *sqlparser.When, sqlparser.ValTuple,
		*sqlparser.NullVal, sqlparser.BoolVal, *sqlparser.SubstrExpr, sqlparser.TableName:
		return true, nil
	case sqlparser.ColIdent:
		return true, checkIdent(n.String())
	case sqlparser.TableIdent:
		return true, checkIdent(n.String())
	case *sqlparser.StarExpr:
		if !n.TableName.IsEmpty() && n.TableName.Name.String() != c.alias {
			return false, invalid("unknown table %q in %s.*", n.TableName.Name.String(), n.TableName.Name.String())
		}
		return true, nil
	case *sqlparser.ColName:
		return c.column(n)
	case *sqlparser.SQLVal:
		switch n.Type {
		case sqlparser.StrVal:
			return true, nil
		case sqlparser.IntVal, sqlparser.FloatVal:
			// Printed as written: only numbers both dialects read alike.
			if !numberRe.Match(n.Val) {
				return false, invalid("number %q is not supported", n.Val)
			}
			return true, nil
		case sqlparser.ValArg:
			return false, invalid("placeholders (%s) are not supported: write the value into the query", n.Val)
		case sqlparser.HexNum, sqlparser.HexVal, sqlparser.BitVal:
		}
		return false, invalid("literal %s is not supported", sqlparser.String(n))
	case *sqlparser.ComparisonExpr:
		switch n.Operator {
		case sqlparser.EqualStr, sqlparser.LessThanStr, sqlparser.GreaterThanStr, sqlparser.LessEqualStr,
			sqlparser.GreaterEqualStr, sqlparser.NotEqualStr, sqlparser.InStr, sqlparser.NotInStr,
			sqlparser.LikeStr, sqlparser.NotLikeStr:
		default:
			return false, invalid("operator %s is not supported", n.Operator)
		}
		if n.Escape != nil {
			return false, invalid("LIKE … ESCAPE is not supported")
		}
		return true, nil
	case *sqlparser.IsExpr:
		if n.Operator != sqlparser.IsNullStr && n.Operator != sqlparser.IsNotNullStr {
			return false, invalid("%s is not supported", n.Operator)
		}
		return true, nil
	case *sqlparser.BinaryExpr:
		switch n.Operator {
		case sqlparser.PlusStr, sqlparser.MinusStr, sqlparser.MultStr, sqlparser.DivStr, sqlparser.ModStr:
			return true, nil
		}
		return false, invalid("operator %s is not supported", n.Operator)
	case *sqlparser.UnaryExpr:
		if n.Operator != sqlparser.UMinusStr && n.Operator != sqlparser.UPlusStr {
			return false, invalid("operator %s is not supported", strings.TrimSpace(n.Operator))
		}
		return true, nil
	case *sqlparser.IntervalExpr:
		if !intervalUnits[strings.ToLower(n.Unit)] {
			return false, invalid("interval unit %q is not supported", n.Unit)
		}
		return true, nil
	case *sqlparser.FuncExpr:
		fn := n.Name.Lowered()
		if !n.Qualifier.IsEmpty() {
			return false, invalid("qualified function %s.%s is not allowed", n.Qualifier.String(), n.Name.String())
		}
		if !allowedFunctions[fn] {
			return false, invalid("function %s is not allowed", n.Name.String())
		}
		if n.IsAggregate() || chAggregates[fn] {
			c.p.Aggregate = true
		}
		return true, nil
	case *sqlparser.Subquery, *sqlparser.ExistsExpr:
		return false, invalid("subqueries are not supported")
	}
	return false, invalid("%s is not supported", strings.TrimSpace(sqlparser.String(node)))
}

func (c *checker) column(n *sqlparser.ColName) (bool, error) {
	if !n.Qualifier.IsEmpty() && (n.Qualifier.Name.String() != c.alias || !n.Qualifier.Qualifier.IsEmpty()) {
		return false, invalid("unknown table %q", sqlparser.String(n.Qualifier))
	}
	name := n.Name.String()
	if name == NodeColumn || c.aliases[n.Name.Lowered()] {
		return true, nil
	}
	v, ok := c.cols[name]
	if !ok {
		return false, invalid("table %s has no column %q", c.table, name)
	}
	c.p.MinSchema = max(c.p.MinSchema, v)
	return true, nil
}

var numberRe = regexp.MustCompile(`^([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$`)

var intervalUnits = setOf("second", "minute", "hour", "day", "week", "month", "quarter", "year")

// checkIdent refuses a name the two SQL dialects could read differently
// (backslashes, quotes, control characters, invalid UTF-8) and the words
// that would change how ClickHouse runs the statement.
func checkIdent(s string) error {
	if !utf8.ValidString(s) {
		return invalid("name %q is not valid UTF-8", s)
	}
	for _, r := range s {
		if r == '\\' || r == '`' || r == '\'' || r == '"' || r == '@' || !unicode.IsPrint(r) {
			return invalid("name %q holds %q: names take letters, digits, spaces and punctuation other than quotes and backslashes", s, r)
		}
	}
	if forbiddenWords[strings.ToLower(s)] || s == placeholder {
		return invalid("%q cannot be used as a name", s)
	}
	return nil
}

// checkDepth refuses expressions nested deeper than limit. It stops
// descending as soon as the bound is passed, so a deep query costs no more
// than a shallow one.
func checkDepth(limit int, nodes ...sqlparser.SQLNode) error {
	var depth func(n sqlparser.SQLNode, d int) error
	depth = func(n sqlparser.SQLNode, d int) error {
		if d > limit {
			return invalid("expressions nest more than %d deep", limit)
		}
		root := true
		return sqlparser.Walk(func(child sqlparser.SQLNode) (bool, error) {
			if root {
				root = false
				return true, nil
			}
			return false, depth(child, d+1)
		}, n)
	}
	for _, n := range nodes {
		if err := depth(n, 0); err != nil {
			return err
		}
	}
	return nil
}
