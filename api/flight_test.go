package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/flighttest"
	"github.com/syndb/federation/internal/store"
)

const (
	// guestKey has a role below every route's.
	guestKey = "sdb_guest"
	// brokenKey cannot be checked: the store fails.
	brokenKey = "sdb_broken"
)

// flightStore is fakeStore with a key whose role is unknown and a key the
// store fails to check.
type flightStore struct{ fakeStore }

func (s flightStore) Authenticate(ctx context.Context, key string) (store.Principal, error) {
	switch key {
	case guestKey:
		return store.Principal{KeyID: 9, KeyName: "guest", Account: "default", Role: "guest"}, nil
	case brokenKey:
		return store.Principal{}, errors.New("postgres is down for the test")
	}
	return s.fakeStore.Authenticate(ctx, key)
}

// serveFlightTest runs the hub's Flight server (over TLS with cert) on a
// loopback port and returns its address.
func serveFlightTest(t *testing.T, cert *Certificate) string {
	t.Helper()
	s := New(config.API{FlightPublicAddr: "hub:50051", ShutdownTimeout: 5 * time.Second},
		Deps{Store: flightStore{}, Log: slog.New(slog.DiscardHandler), TLS: cert})
	var lc net.ListenConfig
	lis, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.serveFlight(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return lis.Addr().String()
}

func flightClient(t *testing.T, addr string, creds credentials.TransportCredentials) flight.Client {
	t.Helper()
	cl, err := flight.NewClientWithMiddleware(addr, nil, nil, grpc.WithTransportCredentials(creds))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func withKey(ctx context.Context, key string) context.Context {
	if key == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
}

// flightCall calls method with key (none when empty); see flighttest.Call.
func flightCall(ctx context.Context, t *testing.T, cl flight.Client, method, key string) codes.Code {
	t.Helper()
	ctx, cancel := context.WithTimeout(withKey(ctx, key), 10*time.Second)
	defer cancel()
	code, err := flighttest.Call(ctx, cl, method)
	require.NoError(t, err)
	return code
}

// flightUnserved are the FlightService methods the hub does not serve.
var flightUnserved = []string{"PollFlightInfo", "GetSchema", "ListFlights", "ListActions", "DoAction", "DoPut", "DoExchange", "Handshake"}

// TestFlightRoles walks the Flight route table and every other
// FlightService method: no key and an invalid key are Unauthenticated, a
// role below the method's PermissionDenied, a key that cannot be checked
// Unavailable; a key at or above the role reaches the handler (which
// refuses the call's empty input), and a method the hub does not serve is
// Unimplemented, for every key.
func TestFlightRoles(t *testing.T) {
	t.Parallel()
	cl := flightClient(t, serveFlightTest(t, nil), insecure.NewCredentials())
	handled := map[string]codes.Code{"GetFlightInfo": codes.InvalidArgument, "DoGet": codes.NotFound}
	keys := map[string]string{store.RoleReader: readerKey, store.RoleOperator: operatorKey, store.RoleAdmin: goodKey}
	routes := FlightRoutes()
	require.Len(t, routes, len(handled))
	for _, r := range routes {
		require.Contains(t, handled, r.Method)
		require.Equal(t, store.RoleReader, r.Role, "a federated query is a reader's, as POST /v1/query")
	}
	methods := append([]string{"GetFlightInfo", "DoGet"}, flightUnserved...)
	require.ElementsMatch(t, flighttest.Methods(), methods, "the walk calls every method of the Flight service")
	for _, m := range methods {
		for _, key := range []string{"", "sdb_nope"} {
			require.Equal(t, codes.Unauthenticated, flightCall(t.Context(), t, cl, m, key), "%s with key %q", m, key)
		}
		require.Equal(t, codes.Unavailable, flightCall(t.Context(), t, cl, m, brokenKey), "%s: the key cannot be checked", m)
		want, served := handled[m]
		if !served {
			want = codes.Unimplemented
		}
		for _, role := range store.Roles {
			require.Equal(t, want, flightCall(t.Context(), t, cl, m, keys[role]), "%s as %s", m, role)
		}
		if served {
			require.Equal(t, codes.PermissionDenied, flightCall(t.Context(), t, cl, m, guestKey), "%s below its role", m)
		}
	}
}

// TestFlightTLS: with a certificate the Flight server speaks gRPC over TLS
// only, to clients that trust it, and FlightInfo locations say grpc+tls.
func TestFlightTLS(t *testing.T) {
	t.Parallel()
	files := writeCert(t, t.TempDir(), "api", time.Hour)
	cert, err := LoadCertificate(files)
	require.NoError(t, err)
	addr := serveFlightTest(t, cert)
	raw, err := os.ReadFile(files.Cert)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(raw))

	trusted := flightClient(t, addr, credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	require.Equal(t, codes.InvalidArgument, flightCall(t.Context(), t, trusted, "GetFlightInfo", readerKey), "a reader reaches the handler")
	require.Equal(t, codes.Unauthenticated, flightCall(t.Context(), t, trusted, "GetFlightInfo", ""))

	for name, creds := range map[string]credentials.TransportCredentials{
		"plaintext":            insecure.NewCredentials(),
		"an untrusting client": credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12}),
	} {
		cl := flightClient(t, addr, creds)
		require.Equal(t, codes.Unavailable, flightCall(t.Context(), t, cl, "GetFlightInfo", readerKey), name)
	}

	tlsServer := New(config.API{FlightPublicAddr: "hub.example.org:50051"}, Deps{TLS: cert})
	require.Equal(t, "grpc+tls://hub.example.org:50051", tlsServer.flightLocation())
	plain := New(config.API{FlightPublicAddr: "hub.example.org:50051"}, Deps{})
	require.Equal(t, "grpc://hub.example.org:50051", plain.flightLocation())
}

// TestFlightPlansPerKey: a key holds at most maxPlansPerKey unread plans
// (the next GetFlightInfo is ResourceExhausted), other keys are not held
// back by it, and expired plans no longer count.
func TestFlightPlansPerKey(t *testing.T) {
	t.Parallel()
	f := &hubFlight{plans: map[string]flightPlan{}}
	now := time.Now()
	for i := range maxPlansPerKey {
		require.NoError(t, f.keep(fmt.Sprint("a", i), flightPlan{keyID: 1}, now))
	}
	err := f.keep("a-over", flightPlan{keyID: 1}, now)
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "holds 64 planned queries it has not read")
	require.NoError(t, f.keep("b", flightPlan{keyID: 2}, now), "another key")
	plan, err := f.take("a0", 1)
	require.NoError(t, err)
	require.Equal(t, int64(1), plan.keyID)
	require.NoError(t, f.keep("a-read", flightPlan{keyID: 1}, now), "a read plan no longer counts")
	require.Error(t, f.keep("a-over", flightPlan{keyID: 1}, now))
	later := now.Add(flightTicketTTL + time.Second)
	require.NoError(t, f.keep("a-later", flightPlan{keyID: 1}, later), "expired plans no longer count")
	require.Len(t, f.plans, 1)
}

// TestFlightErrorCodes: an API error reaches a Flight client with the gRPC
// code of its HTTP status: the client's mistakes are not Internal.
func TestFlightErrorCodes(t *testing.T) {
	t.Parallel()
	for httpStatus, want := range map[int]codes.Code{
		http.StatusBadRequest:          codes.InvalidArgument,
		http.StatusNotFound:            codes.NotFound,
		http.StatusConflict:            codes.FailedPrecondition,
		http.StatusTooManyRequests:     codes.ResourceExhausted,
		http.StatusBadGateway:          codes.Unavailable,
		http.StatusServiceUnavailable:  codes.Unavailable,
		http.StatusGatewayTimeout:      codes.DeadlineExceeded,
		http.StatusInternalServerError: codes.Internal,
	} {
		err := grpcError(&apiError{httpStatus, "x", "the reason"})
		require.Equal(t, want, status.Code(err), "HTTP %d", httpStatus)
		require.Equal(t, "the reason", status.Convert(err).Message())
	}
	require.Equal(t, codes.Internal, status.Code(grpcError(errors.New("a bug"))))
	require.NotContains(t, grpcError(errors.New("a bug")).Error(), "a bug")
}
