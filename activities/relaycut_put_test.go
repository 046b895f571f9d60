package activities

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/wire"
)

// drainServer is a Flight server whose DoPut reads every batch it is sent
// and answers one row loaded.
type drainServer struct{ flight.BaseFlightServer }

func (*drainServer) DoPut(s flight.FlightService_DoPutServer) error {
	for {
		if _, err := s.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return s.Send(&flight.PutResult{AppMetadata: []byte(`{"rows":1}`)})
			}
			return err
		}
	}
}

// relayTestHost is a libp2p host of cfg on loopback TCP, closed at cleanup.
func relayTestHost(t *testing.T, cfg p2p.HostConfig) host.Host {
	t.Helper()
	key, err := p2p.LoadOrCreateKey(filepath.Join(t.TempDir(), "key"))
	require.NoError(t, err)
	cfg.Key = key
	if cfg.Listen == nil {
		cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	}
	h, err := p2p.NewHost(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// TestFlightPutCutByRelay: a load into a node the hub reaches only through
// a circuit relay, larger than the relay's data limit, fails at once (not
// retried) with an error naming the relay's limits, as a read does; the
// node never answers the load.
func TestFlightPutCutByRelay(t *testing.T) {
	t.Parallel()
	const budget = 256 << 10
	relay := relayTestHost(t, p2p.HostConfig{RelayService: true, RelayLimit: p2p.RelayLimit{Duration: time.Minute, Data: budget}})
	relayInfo := peer.AddrInfo{ID: relay.ID(), Addrs: relay.Addrs()}
	node := relayTestHost(t, p2p.HostConfig{Reachability: "private", Relays: []peer.AddrInfo{relayInfo}})
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	go p2p.KeepReservations(ctx, node, []peer.AddrInfo{relayInfo}, slog.New(slog.DiscardHandler))

	srv := grpc.NewServer()
	flight.RegisterFlightServiceServer(srv, &drainServer{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(p2p.ListenStreams(node, p2p.FlightProtocol, nil)) }()
	t.Cleanup(func() { srv.Stop(); require.NoError(t, <-served) })
	p2p.Handle(node, p2p.FlightEndpoint, slog.New(slog.DiscardHandler), nil,
		func(context.Context, peer.ID, *wire.GetFlightEndpointRequest) (*wire.GetFlightEndpointResponse, error) {
			return &wire.GetFlightEndpointResponse{Location: "libp2p://" + node.ID().String(), Ticket: []byte("t")}, nil
		})

	hub := relayTestHost(t, p2p.HostConfig{})
	var circuits []string
	for _, a := range relay.Addrs() {
		circuits = append(circuits, a.String()+"/p2p/"+relay.ID().String()+"/p2p-circuit")
	}
	ref := domain.NodeRef{Name: "lab-nat", PeerID: node.ID().String(), Addrs: circuits}
	f := newNodeFlight(p2p.NewClient(hub, nil))

	// 64 values of 32 KiB: a batch of 2 MiB, eight times the relay's budget.
	b := array.NewBinaryBuilder(memory.DefaultAllocator, arrow.BinaryTypes.Binary)
	defer b.Release()
	for range 64 {
		b.Append(make([]byte, 32<<10))
	}
	col := b.NewArray()
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "b", Type: arrow.BinaryTypes.Binary}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, 64)
	defer rec.Release()

	var put *flightPut
	var err error
	require.Eventually(t, func() bool {
		put, err = f.put(t.Context(), ref, &wire.FlightQuery{Table: "t", Limit: 1 << 20}, schema)
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "the node is reached through the relay once it holds a reservation")
	defer put.close()
	conns := hub.Network().ConnsToPeer(node.ID())
	require.NotEmpty(t, conns)
	require.True(t, conns[0].Stat().Limited, "the hub's connection to the node is the relay's")

	for i := 0; i < 8 && err == nil; i++ {
		err = put.write(t.Context(), rec)
	}
	if err == nil {
		_, err = put.finish(t.Context())
	}
	require.Error(t, err, "the relay carries %d bytes, the load sent 16 MiB", budget)
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app, "%v", err)
	require.Equal(t, ErrTypeRelayLimit, app.Type(), "%v", err)
	require.True(t, app.NonRetryable())
	require.ErrorContains(t, err, "lab-nat: the Flight transfer through a circuit relay was cut")
	require.ErrorContains(t, err, "SYNDB_RELAY_MAX_DATA")
}
