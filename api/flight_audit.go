package api

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/syndb/federation/internal/store"
)

// audit records a Flight call in the audit log: method FLIGHT, the gRPC
// method as its route, and the HTTP status its gRPC code stands for. The
// ticket and the command are not kept (the query history has the SQL).
func (f *hubFlight) audit(ctx context.Context, fullMethod string, start time.Time, err error) {
	code := status.Code(err)
	e := store.AuditEntry{
		At: start.UTC(), Method: "FLIGHT", Route: auditText(fullMethod), Status: httpStatusOf(code),
		DurationMS: time.Since(start).Milliseconds(), RequestID: uuid.NewString(),
	}
	e.Outcome = auditOutcome(e.Status, nil)
	e.Client = auditText(flightPeerAddr(ctx))
	if p, err := flightPrincipal(ctx); err == nil {
		e.KeyID, e.KeyName, e.Account, e.Role = p.KeyID, p.KeyName, p.Account, p.Role
	}
	f.s.auditLog.record(e)
}

// flightPeerAddr is the address of the peer of a Flight call: the host of
// its connection's remote address ("" when it has none).
func flightPeerAddr(ctx context.Context) string {
	p, ok := grpcpeer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
		return host
	}
	return p.Addr.String()
}

// httpStatusOf is the HTTP status a gRPC code stands for, as the HTTP API
// would answer the same outcome.
func httpStatusOf(code codes.Code) int {
	switch code {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Canceled:
		return 499 // the client went away, as nginx records it
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}
