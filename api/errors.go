package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// Error codes of the JSON error body.
const (
	codeBadRequest   = "bad_request"
	codeUnauthorized = "unauthorized"
	codeNotFound     = "not_found"
	codeForbidden    = "forbidden"
	codeConflict     = "conflict"
	codeUnavailable  = "unavailable"
	codeInternal     = "internal"
)

// ErrorBody is the JSON shape of every error: {"error": {"code", "message"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the code and human-readable message of an error.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// apiError is an error with an HTTP status and a code for the client.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

func errBadRequest(msg string) error { return &apiError{http.StatusBadRequest, codeBadRequest, msg} }
func errForbidden(msg string) error  { return &apiError{http.StatusForbidden, codeForbidden, msg} }
func errConflict(msg string) error   { return &apiError{http.StatusConflict, codeConflict, msg} }
func errNotFound(msg string) error   { return &apiError{http.StatusNotFound, codeNotFound, msg} }
func errUnauthorized(msg string) error {
	return &apiError{http.StatusUnauthorized, codeUnauthorized, msg}
}

// handleError writes every error as JSON. Errors the handlers did not classify
// are logged and answered with a generic 500: no internals reach the client.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var (
		ae *apiError
		he *echo.HTTPError
	)
	body := ErrorBody{}
	status := http.StatusInternalServerError
	switch {
	case errors.As(err, &ae):
		status, body.Error = ae.status, ErrorDetail{Code: ae.code, Message: ae.message}
	case errors.As(err, &he):
		status = he.Code
		msg, _ := he.Message.(string)
		if msg == "" {
			msg = http.StatusText(he.Code)
		}
		msg = strings.ToLower(msg)
		body.Error = ErrorDetail{Code: codeForStatus(he.Code), Message: msg}
	default:
		s.deps.Log.Error("request failed", "method", c.Request().Method, "path", c.Path(), "err", err)
		body.Error = ErrorDetail{Code: codeInternal, Message: "internal error"}
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = c.JSON(status, body)
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return codeBadRequest
	case http.StatusUnauthorized:
		return codeUnauthorized
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return codeNotFound
	case http.StatusServiceUnavailable:
		return codeUnavailable
	default:
		return strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_")
	}
}
