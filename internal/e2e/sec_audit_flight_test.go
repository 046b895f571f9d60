package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/store"
)

// TestSecAuditFlight: a federated query over the hub's Flight server (plan
// and read), a DoGet of an unknown ticket and a call without a key are
// each in the audit log once, as FLIGHT calls with the gRPC method as
// their route, the status their gRPC code stands for and the outcome; and
// the ticket, a bearer of the plan, is in no row.
func TestSecAuditFlight(t *testing.T) {
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	reader := newKey(t, "audit-flight", store.RoleReader)
	cl, err := flight.NewClientWithMiddleware(fed.Env["SYNDB_API_FLIGHT_ADDR"], nil, nil,
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+reader.key)
	desc := &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: []byte(`{"sql": "SELECT count() AS n FROM neuron"}`)}
	info, err := cl.GetFlightInfo(ctx, desc)
	require.NoError(t, err)
	ticket := info.GetEndpoint()[0].GetTicket()
	stream, err := cl.DoGet(ctx, ticket)
	require.NoError(t, err)
	for {
		if _, err := stream.Recv(); err != nil {
			require.ErrorIs(t, err, io.EOF)
			break
		}
	}
	bogus, err := cl.DoGet(ctx, &flight.Ticket{Ticket: []byte("no-such-ticket")})
	require.NoError(t, err)
	_, err = bogus.Recv()
	require.Equal(t, codes.NotFound, status.Code(err), "%v", err)
	_, err = cl.GetFlightInfo(t.Context(), desc)
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)

	const (
		planRoute = "/arrow.flight.protocol.FlightService/GetFlightInfo"
		readRoute = "/arrow.flight.protocol.FlightService/DoGet"
	)
	want := []struct {
		route   string
		status  int
		outcome string
	}{ // newest first
		{readRoute, http.StatusNotFound, store.AuditRefused},
		{readRoute, http.StatusOK, store.AuditOK},
		{planRoute, http.StatusOK, store.AuditOK},
	}
	var got []store.AuditEntry
	wait, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	require.NoError(t, pollUntil(wait, func() error {
		got = auditOf(t, fmt.Sprintf("?key_id=%d", reader.id))
		if len(got) < len(want) {
			return fmt.Errorf("%d of %d entries", len(got), len(want))
		}
		return nil
	}))
	require.Len(t, got, len(want), "each call once")
	for i, w := range want {
		e := got[i]
		require.Equal(t, "FLIGHT", e.Method)
		require.Equal(t, w.route, e.Route)
		require.Equal(t, w.status, e.Status)
		require.Equal(t, w.outcome, e.Outcome)
		require.Equal(t, reader.id, e.KeyID)
		require.Equal(t, reader.name, e.KeyName)
		require.Equal(t, store.RoleReader, e.Role)
		require.Equal(t, "127.0.0.1", e.Client)
		require.NotEmpty(t, e.RequestID)
	}
	conn := pg(t)
	require.NoError(t, pollUntil(wait, func() error {
		if countRows(t, conn, `SELECT count(*) FROM audit_log WHERE method = 'FLIGHT' AND route = $1 AND key_id IS NULL
			AND status = 401 AND at > now() - interval '1 minute'`, planRoute) == 0 {
			return errors.New("the call without a key is not audited yet")
		}
		return nil
	}))
	require.Zero(t, countRows(t, conn, `SELECT count(*) FROM audit_log WHERE strpos(audit_log::text, $1) > 0`, string(ticket.GetTicket())),
		"no row holds the ticket")
	require.Zero(t, countRows(t, conn, `SELECT count(*) FROM audit_log WHERE strpos(audit_log::text, $1) > 0`, reader.key),
		"no row holds the key")
}
