package fedsql

import (
	"slices"
	"strconv"
	"strings"

	chp "github.com/AfterShip/clickhouse-sql-parser/parser"
)

// fromExpr prints a FROM clause: one source, or sources joined.
func (pr *printer) fromExpr(e chp.Expr, right bool) (string, error) {
	leave, err := pr.enter()
	if err != nil {
		return "", err
	}
	defer leave()
	switch n := e.(type) {
	case *chp.JoinTableExpr:
		if n.SampleRatio != nil {
			return "", invalid("SAMPLE is not supported")
		}
		if n.HasFinal {
			return "", invalid("FINAL is not supported")
		}
		return pr.tableExpr(n.Table, right)
	case *chp.JoinExpr:
		return pr.join(n)
	case *chp.TableExpr:
		return pr.tableExpr(n, right)
	}
	return "", invalid("%s in FROM is not supported", describe(e))
}

func (pr *printer) join(j *chp.JoinExpr) (string, error) {
	if len(j.Modifiers) > 0 || j.Constraints != nil {
		return "", invalid("a JOIN needs a table on its left")
	}
	var b strings.Builder
	left, err := pr.fromExpr(j.Left, false)
	if err != nil {
		return "", err
	}
	b.WriteString(left)
	for r := j.Right; r != nil; {
		rj, ok := r.(*chp.JoinExpr)
		if !ok {
			return "", invalid("comma joins are not supported: write JOIN … ON")
		}
		mods, err := pr.joinModifiers(rj.Modifiers)
		if err != nil {
			return "", err
		}
		pr.using = usingKeys(rj.Constraints)
		side, err := pr.fromExpr(rj.Left, true)
		if err != nil {
			return "", err
		}
		b.WriteString(" " + mods + " " + side)
		on, err := pr.joinConstraint(rj.Constraints)
		if err != nil {
			return "", err
		}
		b.WriteString(on)
		r = rj.Right
	}
	pr.using = nil
	pr.a.joins = true
	return b.String(), nil
}

// usingKeys lists the names of a USING clause.
func usingKeys(c chp.Expr) []string {
	var list *chp.ColumnExprList
	switch n := c.(type) {
	case *chp.UsingClause:
		list = n.Using
	case *chp.JoinConstraintClause:
		list = n.Using
	}
	if list == nil {
		return nil
	}
	var out []string
	for _, it := range unwrap(list.Items) {
		if id, ok := it.(*chp.Ident); ok {
			out = append(out, id.Name)
		}
	}
	return out
}

var joinWords = setOf("ALL", "ANY", "INNER", "LEFT", "RIGHT", "FULL", "OUTER", "CROSS", "SEMI", "ANTI", "ASOF")

func (pr *printer) joinModifiers(mods []string) (string, error) {
	var words []string
	for _, m := range mods {
		w := strings.ToUpper(m)
		switch {
		case w == "JOIN":
			continue
		case w == "GLOBAL" || w == "LOCAL":
			return "", invalid("GLOBAL and LOCAL joins are chosen by the federation, not the query")
		case !joinWords[w]:
			return "", invalid("join kind %q is not supported", m)
		}
		words = append(words, w)
	}
	if pr.global {
		words = append([]string{"GLOBAL"}, words...)
	}
	return strings.Join(append(words, "JOIN"), " "), nil
}

func (pr *printer) joinConstraint(c chp.Expr) (string, error) {
	var list *chp.ColumnExprList
	kw := ""
	switch n := c.(type) {
	case nil:
		return "", nil
	case *chp.OnClause:
		list, kw = n.On, " ON "
	case *chp.UsingClause:
		list, kw = n.Using, " USING "
	case *chp.JoinConstraintClause:
		if n.On != nil {
			list, kw = n.On, " ON "
		} else {
			list, kw = n.Using, " USING "
		}
	default:
		return "", invalid("join condition %s is not supported", describe(c))
	}
	if list == nil || len(list.Items) == 0 {
		return "", invalid("a join condition is empty")
	}
	if kw == " ON " {
		if len(list.Items) != 1 {
			return "", invalid("ON takes one condition (join conditions with AND); comma joins are not supported")
		}
		s, err := pr.expr(list.Items[0])
		if err != nil {
			return "", err
		}
		return kw + s, nil
	}
	s, err := pr.items("(", list, ")")
	return kw + s, err
}

func (pr *printer) tableExpr(t *chp.TableExpr, right bool) (string, error) {
	if t.HasFinal {
		return "", invalid("FINAL is not supported")
	}
	e := t.Expr
	var alias string
	if ae, ok := e.(*chp.AliasExpr); ok {
		id, ok := ae.Alias.(*chp.Ident)
		if !ok {
			return "", invalid("a table alias must be a name")
		}
		if err := checkIdent(id.Name); err != nil {
			return "", err
		}
		e, alias = ae.Expr, id.Name
	}
	switch n := e.(type) {
	case *chp.TableIdentifier:
		return pr.table(n, alias, right)
	case *chp.SubQuery:
		return pr.fromSubquery(n, alias, right)
	case *chp.TableFunctionExpr:
		return "", invalid("table functions (%s) are not allowed: read the SynDB tables by name", describe(n.Name))
	}
	return "", invalid("%s in FROM is not supported", describe(e))
}

func (pr *printer) table(n *chp.TableIdentifier, alias string, right bool) (string, error) {
	if n.Database != nil {
		if db := strings.ToLower(n.Database.Name); db == "system" || db == "information_schema" {
			return "", invalid("%s tables are not readable through the federation", db)
		}
		return "", invalid("name the table without a database: %s", n.Table.Name)
	}
	name := n.Table.Name
	if _, ok := pr.a.cat.versions[name]; !ok {
		return "", invalid("unknown table %q (known: %s)", name, pr.a.cat.tableList())
	}
	if alias == "" {
		alias = name
	}
	src := source{table: name}
	if right && pr.global {
		src.joined = len(pr.sc.order) + 1
	}
	if err := pr.sc.addSource(alias, src); err != nil {
		return "", err
	}
	pr.a.tables[name] = true
	return pr.from(name, alias, src.joined, pr.using)
}

func (pr *printer) fromSubquery(n *chp.SubQuery, alias string, right bool) (string, error) {
	child := pr.child()
	s, src, err := child.selectUnion(n.Select)
	if err != nil {
		return "", err
	}
	cols := src.cols
	name := alias
	if name == "" {
		name = "_subquery" + strconv.Itoa(len(pr.sc.order)+1)
	}
	out := "(" + s + ")"
	if right && pr.global {
		// The node sees a shipped right side under no alias: its columns
		// travel under names of their own.
		if cols[unnamedColumn] {
			return "", invalid("a joined subquery must name its columns (alias every expression)")
		}
		src.joined = len(pr.sc.order) + 1
		names := make([]string, 0, len(cols))
		for c := range cols {
			if c != unnamedColumn {
				names = append(names, c)
			}
		}
		slices.Sort(names)
		items := make([]string, 0, len(names))
		for _, c := range names {
			if !identRe.MatchString(c) {
				return "", invalid("a joined subquery's column %q must be a plain name", c)
			}
			items = append(items, quoteIdent(c)+" AS "+joinedName(src.joined, c))
			if slices.Contains(pr.using, c) {
				items = append(items, quoteIdent(c))
			}
		}
		out = "(SELECT " + strings.Join(items, ", ") + " FROM " + out + ")"
	}
	if err := pr.sc.addSource(name, src); err != nil {
		return "", err
	}
	if alias != "" {
		out += " AS " + quoteIdent(alias)
	}
	return out, nil
}
