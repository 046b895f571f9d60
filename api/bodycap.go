package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/syndb/federation/internal/fedsql"
)

// codeBodyTooLarge is the error code of a body over its route's cap (413).
const codeBodyTooLarge = "body_too_large"

// Body caps of the routes (Route.MaxBody). Files never go through the API:
// uploads go to S3 with a pre-signed POST policy.
const (
	// bodySmall is the cap of a body of a few settings, and of the routes
	// that read none.
	bodySmall = 4 << 10
	// bodyJob is the cap of a job's spec (up to 1,000 dataset IDs, a
	// dataset's metadata).
	bodyJob = 64 << 10
	// bodyQuery is the cap of a federated query: its SQL may be 64 KiB
	// (fedsql.Parse), which JSON's escapes may double, with a list of
	// nodes; it compiles to at most fedsql.MaxStatement, 256 KiB, the text
	// the hub's ClickHouse reads.
	bodyQuery = fedsql.MaxStatement
)

// capBody refuses a request body over limit bytes with a 413: at once when
// its Content-Length says so, without reading it, and otherwise as soon as
// the handler reads past limit. The connection is then closed, so the rest
// of the body is never read.
func capBody(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if req.ContentLength > limit {
				return errBodyTooLarge(c, limit)
			}
			req.Body = http.MaxBytesReader(c.Response().Writer, req.Body, limit)
			return next(c)
		}
	}
}

func errBodyTooLarge(c echo.Context, limit int64) error {
	return &apiError{http.StatusRequestEntityTooLarge, codeBodyTooLarge,
		fmt.Sprintf("%s %s takes a body of at most %d bytes", c.Request().Method, c.Path(), limit)}
}

// bodyError is err of reading the body as the client's answer: a 413 when
// the body went past its cap, else nil.
func bodyError(c echo.Context, err error) error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return errBodyTooLarge(c, mb.Limit)
	}
	return nil
}
