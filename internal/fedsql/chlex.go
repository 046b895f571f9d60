package fedsql

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// The compiled statement is read again the way ClickHouse's lexer reads it,
// because the parser that read the user's text may disagree with ClickHouse
// on where a name or a string ends. What ClickHouse
// will see must be what the compiler meant: the one federated source, the
// compiler's remote() calls and allowlisted functions, nothing else.

type tokKind int

const (
	tokWord   tokKind = iota // bare identifier or keyword
	tokQuoted                // `name` or "name"
	tokString                // 'literal'
	tokNumber
	tokPunct
)

type token struct {
	kind tokKind
	text string // raw text; for tokQuoted and tokString, the decoded value
}

// chTokens splits s into tokens as ClickHouse 18.16 and later read it. It
// refuses what the compiler never prints: comments, statement breaks,
// placeholders, characters outside the SQL it writes, unterminated quotes.
func chTokens(s string) ([]token, error) {
	var out []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && strings.HasPrefix(s[i:], "--"), c == '/' && strings.HasPrefix(s[i:], "/*"), c == '#':
			return nil, fmt.Errorf("comment at byte %d", i)
		case c == '\'' || c == '`' || c == '"':
			v, n, err := chQuoted(s[i:])
			if err != nil {
				return nil, fmt.Errorf("at byte %d: %w", i, err)
			}
			k := tokQuoted
			if c == '\'' {
				k = tokString
			}
			out = append(out, token{kind: k, text: v})
			i += n
		case isDigit(c) || (c == '.' && i+1 < len(s) && isDigit(s[i+1])):
			n := chNumber(s[i:])
			if i+n < len(s) && isWordChar(s[i+n]) {
				return nil, fmt.Errorf("malformed number at byte %d", i)
			}
			out = append(out, token{kind: tokNumber, text: s[i : i+n]})
			i += n
		case isWordStart(c):
			j := i + 1
			for j < len(s) && isWordChar(s[j]) {
				j++
			}
			out = append(out, token{kind: tokWord, text: s[i:j]})
			i = j
		default:
			op := chOperator(s[i:])
			if op == "" {
				r, _ := utf8.DecodeRuneInString(s[i:])
				return nil, fmt.Errorf("unexpected %q at byte %d", r, i)
			}
			out = append(out, token{kind: tokPunct, text: op})
			i += len(op)
		}
	}
	return out, nil
}

// chQuoted reads a quoted string or name starting at s[0]: a backslash
// escapes the next byte and a doubled quote stands for one. It returns the
// decoded value (escapes kept as the escaped byte) and the bytes read.
func chQuoted(s string) (string, int, error) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 >= len(s) {
				return "", 0, fmt.Errorf("unterminated %c", q)
			}
			i++
			b.WriteByte(unescape(s[i]))
		case q:
			if i+1 < len(s) && s[i+1] == q {
				b.WriteByte(q)
				i++
				continue
			}
			return b.String(), i + 1, nil
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unterminated %c", q)
}

func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 't':
		return '\t'
	case 'r':
		return '\r'
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case '0':
		return 0
	}
	return c
}

func chNumber(s string) int {
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		i := 2
		for i < len(s) && strings.IndexByte("0123456789abcdefABCDEF", s[i]) >= 0 {
			i++
		}
		return i
	}
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && isDigit(s[j]) {
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			i = j
		}
	}
	return i
}

// chOperator returns the operator at the start of s, among those the
// compiler prints, or "".
func chOperator(s string) string {
	for _, op := range []string{"<=", ">=", "!=", "<>", "||", "->", "=="} {
		if strings.HasPrefix(s, op) {
			return op
		}
	}
	if strings.IndexByte("(),.+-*/%=<>[]?:", s[0]) >= 0 {
		return s[:1]
	}
	return ""
}

func isDigit(c byte) bool     { return c >= '0' && c <= '9' }
func isWordStart(c byte) bool { return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isWordChar(c byte) bool  { return isWordStart(c) || isDigit(c) }

// notFunctions are keywords ClickHouse reads before a parenthesis without a
// function call: operators and clause words.
var notFunctions = setOf("and", "or", "not", "in", "is", "like", "ilike", "between", "when", "then", "else",
	"case", "as", "from", "where", "select", "by", "having", "interval", "distinct", "all", "null", "limit",
	"offset", "asc", "desc", "on", "group", "order", "union", "end", "using", "join", "global", "prewhere", "with",
	"array", "inner", "left", "right", "full", "outer", "any", "cross", "semi", "anti", "asof", "cast")

// forbiddenWords never appear outside string literals of a compiled
// statement: clauses that change how or where it runs, and the databases
// that hold the server's own state.
var forbiddenWords = setOf("settings", "format", "into", "outfile", "system", "information_schema", "sample",
	"final", "except", "intersect", "window", "over")

// checkCompiled reads the compiled statement as ClickHouse will: every
// source after FROM or JOIN is a subquery or one of the compiler's
// remote() calls, which read exactly the registry entries and tables the
// compiler meant, in order; IN reads a list or a subquery, never a table;
// every function is allowlisted; no forbidden clause or name appears.
func checkCompiled(sql string, remotes []remoteCall) error {
	toks, err := chTokens(sql)
	if err != nil {
		return err
	}
	n := 0
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.kind != tokWord && t.kind != tokQuoted {
			continue
		}
		name := strings.ToLower(t.text)
		if forbiddenWords[name] {
			return fmt.Errorf("%q is not allowed", t.text)
		}
		if t.kind == tokWord && (name == "from" || name == "join" || name == "in") {
			if name == "join" && i > 0 && strings.EqualFold(toks[i-1].text, "array") {
				continue
			}
			if i+1 >= len(toks) {
				return fmt.Errorf("%s at the end", t.text)
			}
			next := toks[i+1]
			if next.kind == tokPunct && next.text == "(" {
				if name == "in" && inReadsName(toks[i+1:]) {
					return fmt.Errorf("IN reads a name, not a list or a subquery")
				}
				continue
			}
			if name == "in" || next.kind != tokWord || !strings.EqualFold(next.text, "remote") {
				return fmt.Errorf("%s reads %q, not a subquery or the compiler's remote()", t.text, next.text)
			}
			continue
		}
		if i+1 >= len(toks) || toks[i+1].kind != tokPunct || toks[i+1].text != "(" {
			continue
		}
		if name == "remote" && t.kind == tokWord {
			if n >= len(remotes) {
				return fmt.Errorf("more remote() calls than the %d the compiler wrote", len(remotes))
			}
			if err := checkRemote(toks[i+1:], remotes[n]); err != nil {
				return err
			}
			if i == 0 || (!strings.EqualFold(toks[i-1].text, "from") && !strings.EqualFold(toks[i-1].text, "join")) {
				return fmt.Errorf("remote() outside FROM")
			}
			n++
			i += 11
			continue
		}
		if t.kind == tokWord && notFunctions[name] {
			continue
		}
		if !compiledFunction(name) {
			return fmt.Errorf("function %s is not allowed", t.text)
		}
	}
	if n != len(remotes) {
		return fmt.Errorf("%d remote() calls for the %d the compiler wrote", n, len(remotes))
	}
	return nil
}

// inReadsName reports IN's parenthesis holding one name (a table to
// ClickHouse): ( word ) or ( word . word ).
func inReadsName(t []token) bool {
	isName := func(k tokKind) bool { return k == tokWord || k == tokQuoted }
	if len(t) >= 3 && isName(t[1].kind) && t[2].kind == tokPunct && t[2].text == ")" {
		return true
	}
	return len(t) >= 5 && isName(t[1].kind) && t[2].text == "." && isName(t[3].kind) && t[4].kind == tokPunct && t[4].text == ")"
}

// checkRemote checks the tokens after "remote": ( addr, db, table, user, password ).
func checkRemote(args []token, rc remoteCall) error {
	want := []string{rc.target.Addr, rc.target.Database, rc.table, rc.target.User, rc.target.Password}
	if len(args) < 2*len(want)+1 || args[0].kind != tokPunct || args[0].text != "(" {
		return fmt.Errorf("remote() of %s is malformed", rc.target.Name)
	}
	for j, w := range want {
		a, sep := args[1+2*j], args[2+2*j]
		wantSep := ","
		if j == len(want)-1 {
			wantSep = ")"
		}
		if a.kind != tokString || a.text != w || sep.kind != tokPunct || sep.text != wantSep {
			return fmt.Errorf("remote() of %s does not read its registry entry", rc.target.Name)
		}
	}
	return nil
}

var (
	nodeNameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// hostPortRe reads a host:port, or replicas host:port|host:port, of
	// which remote() uses one and fails over to the others.
	hostPortRe = regexp.MustCompile(`^` + hostPort + `(\|` + hostPort + `)*$`)
)

const hostPort = `([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}`

func (t Target) check() error {
	if !nodeNameRe.MatchString(t.Name) || !hostPortRe.MatchString(t.Addr) || !identRe.MatchString(t.Database) {
		return fmt.Errorf("registry entry %q has an unusable address or database", t.Name)
	}
	return nil
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
