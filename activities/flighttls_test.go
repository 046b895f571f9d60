package activities

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc"

	"github.com/syndb/federation/internal/certpin"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/p2p/p2ptest"
	"github.com/syndb/federation/internal/wire"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and loads it.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "flight.crt"), filepath.Join(dir, "flight.key")
	require.NoError(t, certpin.WriteSelfSigned(certFile, keyFile, []string{"127.0.0.1"}, time.Hour))
	cert, pin, err := certpin.Load(certFile, keyFile)
	require.NoError(t, err)
	return cert, pin
}

// TestFlightReadOverPinnedTLS: a node serving Flight over TLS on
// 127.0.0.1 hands out grpcs://; the hub's reader, holding the pin of the
// certificate served, reads the same rows the server wrote; holding the
// pin of another certificate, it is refused for good, saying the
// certificate is not the one registered, and reads and loads nothing.
func TestFlightReadOverPinnedTLS(t *testing.T) {
	t.Parallel()
	hub, node := p2ptest.Host(t), p2ptest.Host(t)
	want := []int64{2, 7, 1, 8, 2, 8, 1, 8}
	b := array.NewInt64Builder(memory.DefaultAllocator)
	defer b.Release()
	b.AppendValues(want, nil)
	col := b.NewArray()
	defer col.Release()
	rec := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64}}, nil), []arrow.Array{col}, int64(len(want)))
	defer rec.Release()

	cert, pin := selfSigned(t)
	_, otherPin := selfSigned(t)
	lis, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	flight.RegisterFlightServiceServer(srv, &rowsServer{rec: rec})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(tls.NewListener(lis, certpin.ServerConfig(cert))) }()
	t.Cleanup(func() { srv.Stop(); require.NoError(t, <-served) })
	loc := "grpcs://" + lis.Addr().String()
	p2p.Handle(node, p2p.FlightEndpoint, slog.New(slog.DiscardHandler), nil,
		func(context.Context, peer.ID, *wire.GetFlightEndpointRequest) (*wire.GetFlightEndpointResponse, error) {
			return &wire.GetFlightEndpointResponse{Location: loc, Ticket: []byte("t")}, nil
		})
	var addrs []string
	for _, a := range node.Addrs() {
		addrs = append(addrs, a.String())
	}
	f := newNodeFlight(p2p.NewClient(hub, nil))
	refusedForGood := func(t *testing.T, err error, pin []byte) {
		t.Helper()
		require.ErrorContains(t, err, "lab-a: Flight server at "+lis.Addr().String()+" refused: TLS certificate does not match its pin")
		require.ErrorContains(t, err, "the pinned one "+hex.EncodeToString(pin))
		require.ErrorContains(t, err, "the certificate it serves is not the one it registered")
		var ae *temporal.ApplicationError
		require.ErrorAs(t, err, &ae)
		require.True(t, ae.NonRetryable())
		require.Equal(t, domain.ErrTypeInvalid, ae.Type())
	}
	for _, tc := range []struct {
		name string
		pin  []byte
		ok   bool
	}{
		{"the served certificate's pin", pin, true},
		{"another certificate's pin", otherPin, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := domain.NodeRef{Name: "lab-a", PeerID: node.ID().String(), Addrs: addrs, FlightCertSHA256: hex.EncodeToString(tc.pin),
				FlightAddr: lis.Addr().String()}
			rd, done, err := f.read(t.Context(), ref, &wire.FlightQuery{Table: "neuron"})
			if !tc.ok {
				refusedForGood(t, err, tc.pin)
				_, err = f.put(t.Context(), ref, &wire.FlightQuery{Table: "neuron", Limit: 1}, rec.Schema())
				refusedForGood(t, err, tc.pin)
				return
			}
			require.NoError(t, err)
			defer done()
			var got []int64
			for rd.Next() {
				got = append(got, rd.RecordBatch().Column(0).(*array.Int64).Int64Values()...)
			}
			require.NoError(t, rd.Err())
			require.Equal(t, want, got)
		})
	}
}
