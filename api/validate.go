package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// Bounds of the parameters that have no tighter bound of their own.
const (
	// maxTextParam bounds a text parameter (a filter, a path segment).
	maxTextParam = 256
	// maxOffset bounds the offset of a paged list.
	maxOffset = 10_000_000
)

// checkText refuses text that PostgreSQL cannot store or that no caller
// needs: invalid UTF-8, a NUL character, more than limit bytes. Every text
// parameter that reaches PostgreSQL goes through it.
func checkText(name, v string, limit int) error {
	switch {
	case !utf8.ValidString(v):
		return errBadRequest(fmt.Sprintf("%s is not valid UTF-8", name))
	case strings.IndexByte(v, 0) >= 0:
		return errBadRequest(fmt.Sprintf("%s contains a NUL character", name))
	case len(v) > limit:
		return errBadRequest(fmt.Sprintf("%s is %d bytes, at most %d", name, len(v), limit))
	}
	return nil
}

// queryText is the query parameter name, checked by checkText.
func queryText(c echo.Context, name string, limit int) (string, error) {
	v := c.QueryParam(name)
	if err := checkText(name, v, limit); err != nil {
		return "", err
	}
	return v, nil
}

// pathText is the path parameter name, unescaped and checked by checkText.
func pathText(c echo.Context, name string) (string, error) {
	v := c.Param(name)
	// Echo routes on the escaped path when it differs from the decoded one
	// ("%ff" is not how Go would escape 0xff), and then leaves parameters
	// escaped.
	if c.Request().URL.RawPath != "" {
		u, err := url.PathUnescape(v)
		if err != nil {
			return "", errBadRequest(fmt.Sprintf("{%s} %.40q is not a valid escaped path segment", name, v))
		}
		v = u
	}
	if err := checkText("{"+name+"}", v, maxTextParam); err != nil {
		return "", err
	}
	return v, nil
}

// queryInt is the integer query parameter name, def when absent; a value
// that is not a number or is outside lo..hi is a 400.
func queryInt(c echo.Context, name string, def, lo, hi int) (int, error) {
	raw := c.QueryParam(name)
	if raw == "" {
		return def, nil
	}
	v, err := strconv.Atoi(raw)
	if err != nil {
		return 0, errBadRequest(fmt.Sprintf("%s=%.40q is not a number in %d..%d", name, raw, lo, hi))
	}
	if v < lo || v > hi {
		return 0, errBadRequest(fmt.Sprintf("%s %d is outside %d..%d", name, v, lo, hi))
	}
	return v, nil
}

// decodeStrict decodes one JSON value from r into v, refusing unknown
// fields, anything after the value, invalid UTF-8 and NUL characters in
// strings (io.EOF when r holds nothing). A number that does not fit its
// field is an error of the decoder.
func decodeStrict(r io.Reader, v any) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if err := checkJSONText(raw); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

// checkJSONText refuses a JSON text that is not UTF-8 or has a string (or
// key) holding NUL, which PostgreSQL's text and jsonb cannot store. Bad
// JSON is left to the decoder to report.
func checkJSONText(raw []byte) error {
	if !utf8.Valid(raw) {
		return errors.New("the JSON is not valid UTF-8")
	}
	// JSON can only spell NUL as \u0000: a raw control byte in a string is
	// a syntax error.
	if !bytes.Contains(raw, []byte(`\u0000`)) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		if s, ok := tok.(string); ok && strings.IndexByte(s, 0) >= 0 {
			return errors.New("a JSON string contains a NUL character (\\u0000)")
		}
	}
}
