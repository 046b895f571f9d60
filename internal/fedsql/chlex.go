package fedsql

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// The compiled statement is read again the way ClickHouse's lexer reads it,
// because the user's text went through a MySQL parser and ClickHouse may
// disagree with it on where a name or a string ends (a backslash before a
// closing backtick is an escape to ClickHouse, not to MySQL). What ClickHouse
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
	for _, op := range []string{"<=", ">=", "!=", "<>", "||"} {
		if strings.HasPrefix(s, op) {
			return op
		}
	}
	if strings.IndexByte("(),.+-*/%=<>[]", s[0]) >= 0 {
		return s[:1]
	}
	return ""
}

func isDigit(c byte) bool     { return c >= '0' && c <= '9' }
func isWordStart(c byte) bool { return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isWordChar(c byte) bool  { return isWordStart(c) || isDigit(c) }

// notFunctions are keywords ClickHouse reads before a parenthesis without a
// function call: operators and clause words.
var notFunctions = map[string]bool{
	"and": true, "or": true, "not": true, "in": true, "is": true, "like": true, "between": true, "when": true,
	"then": true, "else": true, "case": true, "as": true, "from": true, "where": true, "select": true, "by": true,
	"having": true, "interval": true, "distinct": true, "all": true, "null": true, "limit": true, "offset": true,
	"asc": true, "desc": true, "on": true, "group": true, "order": true, "union": true, "end": true,
}

// forbiddenWords never appear outside string literals of a compiled
// statement: clauses that change how or where it runs, and the databases
// that hold the server's own state.
var forbiddenWords = map[string]bool{
	"settings": true, "format": true, "into": true, "outfile": true, "system": true, "information_schema": true,
	"join": true, "global": true, "prewhere": true, "sample": true, "final": true, "with": true,
}

// checkBody reads the printed query (the federated table still a
// placeholder) as ClickHouse would: the placeholder is one bare name, every
// function is allowlisted, and no clause or name beyond what the checked
// query may hold appears.
func checkBody(body string) error {
	toks, err := chTokens(body)
	if err != nil {
		return err
	}
	seen := 0
	for i, t := range toks {
		name := strings.ToLower(t.text)
		if t.kind != tokWord && t.kind != tokQuoted {
			continue
		}
		if t.text == placeholder {
			if t.kind != tokWord {
				return fmt.Errorf("federated table read as a quoted name")
			}
			seen++
			continue
		}
		if forbiddenWords[name] {
			return fmt.Errorf("%q is not allowed", t.text)
		}
		if i+1 < len(toks) && toks[i+1].kind == tokPunct && toks[i+1].text == "(" {
			if t.kind == tokWord && notFunctions[name] {
				continue
			}
			if !allowedFunctions[name] {
				return fmt.Errorf("function %s is not allowed", t.text)
			}
		}
	}
	if seen != 1 {
		return fmt.Errorf("federated table read %d times, want once", seen)
	}
	return nil
}

// checkCompiled reads the compiled statement as ClickHouse would and checks
// that its only table functions are one remote() per target, each with the
// target's own address, database, table and login, in order.
func checkCompiled(sql, table string, targets []Target) error {
	toks, err := chTokens(sql)
	if err != nil {
		return err
	}
	n := 0
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if (t.kind != tokWord && t.kind != tokQuoted) || !strings.EqualFold(t.text, "remote") {
			continue
		}
		if n >= len(targets) {
			return fmt.Errorf("more remote() calls than the %d targets", len(targets))
		}
		tg := targets[n]
		want := []string{tg.Addr, tg.Database, table, tg.User, tg.Password}
		args := toks[i+1:]
		if len(args) < 2*len(want)+1 || args[0].text != "(" || args[0].kind != tokPunct {
			return fmt.Errorf("remote() of %s is malformed", tg.Name)
		}
		for j, w := range want {
			a, sep := args[1+2*j], args[2+2*j]
			wantSep := ","
			if j == len(want)-1 {
				wantSep = ")"
			}
			if a.kind != tokString || a.text != w || sep.kind != tokPunct || sep.text != wantSep {
				return fmt.Errorf("remote() of %s does not read its registry entry", tg.Name)
			}
		}
		n++
		i += 2 * len(want)
	}
	if n != len(targets) {
		return fmt.Errorf("%d remote() calls for %d targets", n, len(targets))
	}
	return nil
}
