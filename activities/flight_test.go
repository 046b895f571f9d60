package activities

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/p2p/p2ptest"
	"github.com/syndb/federation/internal/wire"
)

// TestFlightRoute: a grpc:// location is dialled over TCP in plaintext,
// grpcs:// over TLS pinned to the node's registered certificate, libp2p://
// of the node's own peer over a stream; a TCP location at an address the
// node did not register (or of a node that registered none), one naming
// another peer, or
// of an unknown scheme, or over libp2p without a host, or plaintext of a
// node with a pin, or TLS of a node without one, is refused for good.
func TestFlightRoute(t *testing.T) {
	t.Parallel()
	const self = "12D3KooWGzBGLfUq2zGDxgm7PjYkYEi9RUqoLuRCFaXd3gEBQzK4"
	pin := strings.Repeat("ab", 32)
	const registered = "10.0.0.5:50052"
	plain := domain.NodeRef{Name: "lab-a", PeerID: self, FlightAddr: registered}
	pinned := domain.NodeRef{Name: "lab-a", PeerID: self, FlightCertSHA256: pin, FlightAddr: registered}
	// overLibp2p registered no Flight address: its data plane is libp2p.
	overLibp2p := domain.NodeRef{Name: "lab-a", PeerID: self}
	withHost := newNodeFlight(p2p.NewClient(p2ptest.Host(t), nil))
	cases := []struct {
		name   string
		f      nodeFlight
		node   domain.NodeRef
		loc    string
		target string
		// opts counts the dial options: transport credentials, and a
		// stream dialer over libp2p.
		opts int
		err  string
	}{
		{"tcp", withHost, plain, "grpc://10.0.0.5:50052", "10.0.0.5:50052", 1, ""},
		{"tls", withHost, pinned, "grpcs://10.0.0.5:50052", "10.0.0.5:50052", 1, ""},
		{"libp2p", withHost, plain, "libp2p://" + self, "passthrough:///" + self, 2, ""},
		{"libp2p with a pin", withHost, pinned, "libp2p://" + self, "passthrough:///" + self, 2, ""},
		{"plaintext with a pin", withHost, pinned, "grpc://10.0.0.5:50052", "", 0, "is plaintext, but the node registered a TLS certificate"},
		{"tls without a pin", withHost, plain, "grpcs://10.0.0.5:50052", "", 0, "is TLS, but the node registered no certificate"},
		{"pin not hex", withHost, domain.NodeRef{Name: "lab-a", FlightCertSHA256: "zz", FlightAddr: registered}, "grpcs://10.0.0.5:50052", "", 0, "is not hex"},
		{"pin too short", withHost, domain.NodeRef{Name: "lab-a", FlightCertSHA256: "abcd", FlightAddr: registered}, "grpcs://10.0.0.5:50052", "", 0,
			"a certificate pin is a SHA-256 of 32 bytes, not 2"},
		{"an address not registered", withHost, plain, "grpc://127.0.0.1:5432", "", 0,
			`Flight location "grpc://127.0.0.1:5432" is not the address the node registered, 10.0.0.5:50052`},
		{"a TLS address not registered", withHost, pinned, "grpcs://10.0.0.5:50053", "", 0, "is not the address the node registered"},
		{"tcp of a node on libp2p", withHost, overLibp2p, "grpc://10.0.0.5:50052", "", 0, "is a TCP address, but the node registered none"},
		{"libp2p of a node on libp2p", withHost, overLibp2p, "libp2p://" + self, "passthrough:///" + self, 2, ""},
		{"another peer", withHost, plain, "libp2p://12D3KooWAnother", "", 0, "names a peer other than the node's own"},
		{"unknown scheme", withHost, plain, "https://10.0.0.5", "", 0, `unsupported Flight location "https://10.0.0.5"`},
		{"no host", newNodeFlight(nil), plain, "libp2p://" + self, "", 0, "needs a libp2p host"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tc.f.route(tc.node, tc.loc, new(atomic.Bool))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				var ae *temporal.ApplicationError
				require.ErrorAs(t, err, &ae)
				require.True(t, ae.NonRetryable())
				require.Equal(t, domain.ErrTypeInvalid, ae.Type())
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.target, r.target)
			require.Len(t, r.opts, tc.opts)
			require.NotNil(t, r.refused)
		})
	}
}

// rowsServer is a Flight server whose DoGet streams one fixed record,
// whatever the ticket.
type rowsServer struct {
	flight.BaseFlightServer
	rec arrow.RecordBatch
}

func (s *rowsServer) DoGet(_ *flight.Ticket, stream flight.FlightService_DoGetServer) error {
	w := flight.NewRecordWriter(stream, ipc.WithSchema(s.rec.Schema()))
	if err := w.Write(s.rec); err != nil {
		return err
	}
	return w.Close()
}

// TestFlightReadOverLibp2p: the hub's reader asks the node for an
// endpoint, is told libp2p://<node>, and reads the node's rows over a
// stream of its own libp2p host.
func TestFlightReadOverLibp2p(t *testing.T) {
	t.Parallel()
	hub, node := p2ptest.Host(t), p2ptest.Host(t)
	b := array.NewInt64Builder(memory.DefaultAllocator)
	defer b.Release()
	want := []int64{3, 1, 4, 1, 5, 9, 2, 6}
	b.AppendValues(want, nil)
	col := b.NewArray()
	defer col.Release()
	rec := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64}}, nil), []arrow.Array{col}, int64(len(want)))
	defer rec.Release()

	srv := grpc.NewServer()
	flight.RegisterFlightServiceServer(srv, &rowsServer{rec: rec})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(p2p.ListenStreams(node, p2p.FlightProtocol, nil)) }()
	t.Cleanup(func() { srv.Stop(); require.NoError(t, <-served) })
	p2p.Handle(node, p2p.FlightEndpoint, slog.New(slog.DiscardHandler), nil,
		func(_ context.Context, from peer.ID, _ *wire.GetFlightEndpointRequest) (*wire.GetFlightEndpointResponse, error) {
			if from != hub.ID() {
				return nil, errors.New("not the hub")
			}
			return &wire.GetFlightEndpointResponse{Location: "libp2p://" + node.ID().String(), Ticket: []byte("t")}, nil
		})
	var addrs []string
	for _, a := range node.Addrs() {
		addrs = append(addrs, a.String())
	}
	f := newNodeFlight(p2p.NewClient(hub, nil))
	ref := domain.NodeRef{Name: "lab-a", PeerID: node.ID().String(), Addrs: addrs}
	rd, done, err := f.read(t.Context(), ref, &wire.FlightQuery{Table: "neuron"})
	require.NoError(t, err)
	defer done()
	var got []int64
	for rd.Next() {
		got = append(got, rd.RecordBatch().Column(0).(*array.Int64).Int64Values()...)
	}
	require.NoError(t, rd.Err())
	require.Equal(t, want, got)
}
