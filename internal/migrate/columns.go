package migrate

import (
	"regexp"
	"slices"
	"strings"
)

var (
	createTableRe = regexp.MustCompile(`(?is)^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*ENGINE`)
	columnLineRe  = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_]*)\s+[A-Z]`)
)

// ColumnVersions tells, for every table and column the migrations create,
// the version that introduced it: what a query that reads it needs of a
// warehouse. It understands CREATE TABLE and ALTER TABLE … ADD COLUMN, the
// statements our migrations use (DROP COLUMN removes a column from the map).
func ColumnVersions(migs []Migration) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, m := range migs {
		for _, stmt := range Statements(m.SQL) {
			if c := createTableRe.FindStringSubmatch(stmt); c != nil {
				table := c[1]
				if out[table] == nil {
					out[table] = map[string]int{}
				}
				for _, line := range splitColumns(c[2]) {
					if col := columnLineRe.FindStringSubmatch(line); col != nil {
						if _, ok := out[table][col[1]]; !ok {
							out[table][col[1]] = m.Version
						}
					}
				}
				continue
			}
			if a := addColumnRe.FindStringSubmatch(stmt); a != nil {
				if out[a[1]] == nil {
					out[a[1]] = map[string]int{}
				}
				out[a[1]][a[2]] = m.Version
				continue
			}
			if d := dropColumnRe.FindStringSubmatch(stmt); d != nil {
				delete(out[d[1]], d[2])
			}
		}
	}
	return out
}

var (
	columnDefRe = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_]*)\s+(.+?)\s*$`)
	addDefRe    = regexp.MustCompile(`(?is)^\s*ALTER\s+TABLE\s+([A-Za-z_][A-Za-z0-9_]*)\s+ADD\s+COLUMN\s+([A-Za-z_][A-Za-z0-9_]*)\s+(.+?)\s*$`)
)

// ColumnTypes tells the ClickHouse type of every column the migrations
// create, by table, as the warehouses have them after the last one.
func ColumnTypes(migs []Migration) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, m := range migs {
		for _, stmt := range Statements(m.SQL) {
			if c := createTableRe.FindStringSubmatch(stmt); c != nil {
				if out[c[1]] == nil {
					out[c[1]] = map[string]string{}
				}
				for _, line := range splitColumns(c[2]) {
					if d := columnDefRe.FindStringSubmatch(strings.TrimSpace(line)); d != nil && columnLineRe.MatchString(line) {
						out[c[1]][d[1]] = d[2]
					}
				}
				continue
			}
			if a := addDefRe.FindStringSubmatch(stmt); a != nil {
				if out[a[1]] == nil {
					out[a[1]] = map[string]string{}
				}
				out[a[1]][a[2]] = a[3]
				continue
			}
			if d := dropColumnRe.FindStringSubmatch(stmt); d != nil {
				delete(out[d[1]], d[2])
			}
		}
	}
	return out
}

// splitColumns splits a CREATE TABLE body at the commas that are not inside
// parentheses (types such as Nullable(Decimal(10, 2)) hold commas).
func splitColumns(body string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range body {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, body[start:i])
				start = i + 1
			}
		}
	}
	return append(out, body[start:])
}

// TableNames lists the tables ColumnVersions knows, for messages.
func TableNames(cv map[string]map[string]int) string {
	names := make([]string, 0, len(cv))
	for t := range cv {
		names = append(names, t)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// ColumnOrder lists every table's columns in the order the warehouses hold
// them after the last migration: CREATE TABLE's order, each ADD COLUMN
// appended, each DROP COLUMN removed. SELECT * reads them in this order.
func ColumnOrder(migs []Migration) map[string][]string {
	out := map[string][]string{}
	for _, m := range migs {
		for _, stmt := range Statements(m.SQL) {
			if c := createTableRe.FindStringSubmatch(stmt); c != nil {
				if _, ok := out[c[1]]; ok {
					continue
				}
				var cols []string
				for _, line := range splitColumns(c[2]) {
					if col := columnLineRe.FindStringSubmatch(line); col != nil {
						cols = append(cols, col[1])
					}
				}
				out[c[1]] = cols
				continue
			}
			if a := addColumnRe.FindStringSubmatch(stmt); a != nil {
				if !slices.Contains(out[a[1]], a[2]) {
					out[a[1]] = append(out[a[1]], a[2])
				}
				continue
			}
			if d := dropColumnRe.FindStringSubmatch(stmt); d != nil {
				out[d[1]] = slices.DeleteFunc(out[d[1]], func(c string) bool { return c == d[2] })
			}
		}
	}
	return out
}
