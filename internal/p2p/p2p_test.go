package p2p

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/syndb/federation/internal/wire"
)

func newTestHost(t testing.TB) host.Host {
	t.Helper()
	key, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "id.key"))
	require.NoError(t, err)
	h, err := NewHost(HostConfig{Key: key, Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func connect(t *testing.T, a, b host.Host) {
	t.Helper()
	require.NoError(t, a.Connect(t.Context(), peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}))
}

func TestCallRoundTrip(t *testing.T) {
	t.Parallel()
	server, client := newTestHost(t), newTestHost(t)
	Handle(server, HealthPing, slog.New(slog.DiscardHandler), nil,
		func(_ context.Context, from peer.ID, req *wire.HealthPingRequest) (*wire.HealthPingResponse, error) {
			require.Equal(t, client.ID(), from)
			return &wire.HealthPingResponse{Nonce: req.GetNonce(), Name: "lab-a", ClickhouseOk: true}, nil
		})
	connect(t, client, server)
	var resp wire.HealthPingResponse
	require.NoError(t, Call(t.Context(), client, server.ID(), HealthPing, &wire.HealthPingRequest{Nonce: 42}, &resp))
	require.Equal(t, uint64(42), resp.GetNonce())
	require.Equal(t, "lab-a", resp.GetName())
	require.True(t, resp.GetClickhouseOk())
}

func TestCallCarriesTypedErrors(t *testing.T) {
	t.Parallel()
	server, client := newTestHost(t), newTestHost(t)
	Handle(server, SchemaSync, slog.New(slog.DiscardHandler), nil,
		func(context.Context, peer.ID, *wire.SchemaSyncRequest) (*wire.SchemaSyncResponse, error) {
			return nil, Errorf(CodeDrift, "schema drift at version %d", 2)
		})
	connect(t, client, server)
	err := Call(t.Context(), client, server.ID(), SchemaSync, &wire.SchemaSyncRequest{Target: 1, Migrations: []*wire.Migration{{Version: 1, Name: "a", Checksum: "c", Sql: "SELECT 1"}}}, &wire.SchemaSyncResponse{})
	require.True(t, IsCode(err, CodeDrift), "got %v", err)
	require.Contains(t, err.Error(), "version 2")
}

func TestHandleRefusesUnknownPeers(t *testing.T) {
	t.Parallel()
	server, client := newTestHost(t), newTestHost(t)
	called := false
	Handle(server, HealthPing, slog.New(slog.DiscardHandler), AllowFunc(func(network.Conn) error { return errors.New("not my hub") }),
		func(context.Context, peer.ID, *wire.HealthPingRequest) (*wire.HealthPingResponse, error) {
			called = true
			return &wire.HealthPingResponse{}, nil
		})
	connect(t, client, server)
	err := Call(t.Context(), client, server.ID(), HealthPing, &wire.HealthPingRequest{}, &wire.HealthPingResponse{})
	require.True(t, IsCode(err, CodeUnauthorized), "got %v", err)
	require.False(t, called)
}

func TestCallHonoursContext(t *testing.T) {
	t.Parallel()
	server, client := newTestHost(t), newTestHost(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	Handle(server, HealthPing, slog.New(slog.DiscardHandler), nil,
		func(context.Context, peer.ID, *wire.HealthPingRequest) (*wire.HealthPingResponse, error) {
			<-release
			return &wire.HealthPingResponse{}, nil
		})
	connect(t, client, server)
	ctx, cancel := context.WithCancel(t.Context())
	go cancel()
	err := Call(ctx, client, server.ID(), HealthPing, &wire.HealthPingRequest{}, &wire.HealthPingResponse{})
	require.Error(t, err)
}

func TestFramesAreCapped(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	var hdr [binary.MaxVarintLen64]byte
	buf.Write(hdr[:binary.PutUvarint(hdr[:], MaxMessageSize+1)])
	var v wire.RegisterRequest
	err := readFrame(bufio.NewReader(&buf), &v, MaxMessageSize)
	require.ErrorContains(t, err, "exceeds")

	big := &wire.RegisterRequest{Name: string(make([]byte, Register.MaxRequest))}
	require.ErrorContains(t, writeFrame(&buf, big, Register.MaxRequest), "exceeds")
}

func TestFramesRejectGarbage(t *testing.T) {
	t.Parallel()
	for _, in := range [][]byte{{}, {0x05, 'a'}, {0x03, 0xff, 0xff, 0xff}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		var v wire.HealthPingRequest
		require.Error(t, readFrame(bufio.NewReader(bytes.NewReader(in)), &v, HealthPing.MaxRequest), "%q", in)
	}
}

func TestKeyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", "id.key")
	id1, err := PeerIDFromKeyFile(path)
	require.NoError(t, err)
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	id2, err := PeerIDFromKeyFile(path)
	require.NoError(t, err)
	require.Equal(t, id1, id2, "the identity persists")

	require.NoError(t, os.Chmod(path, 0o644))
	_, err = LoadOrCreateKey(path)
	require.ErrorContains(t, err, "readable by its owner only")

	bad := filepath.Join(t.TempDir(), "bad.key")
	require.NoError(t, os.WriteFile(bad, []byte("not a key"), 0o600))
	_, err = LoadOrCreateKey(bad)
	require.ErrorContains(t, err, "not a libp2p private key")
}

func TestHandleValidatesBeforeServing(t *testing.T) {
	t.Parallel()
	server, client := newTestHost(t), newTestHost(t)
	called := false
	Handle(server, SchemaSync, slog.New(slog.DiscardHandler), nil,
		func(context.Context, peer.ID, *wire.SchemaSyncRequest) (*wire.SchemaSyncResponse, error) {
			called = true
			return &wire.SchemaSyncResponse{}, nil
		})
	connect(t, client, server)
	// A caller that skips validation: write an invalid request by hand.
	s, err := client.NewStream(t.Context(), server.ID(), SchemaSync.ID)
	require.NoError(t, err)
	require.NoError(t, writeFrame(s, &wire.SchemaSyncRequest{Target: 5}, SchemaSync.MaxRequest))
	require.NoError(t, s.CloseWrite())
	var reply wire.Reply
	require.NoError(t, readFrame(bufio.NewReader(s), &reply, 1<<10))
	require.Equal(t, CodeInvalid, reply.GetError().GetCode())
	require.Contains(t, reply.GetError().GetMessage(), "outside the 0 migrations")
	require.False(t, called, "the handler never sees an invalid request")

	// Call validates on the way out too.
	err = Call(t.Context(), client, server.ID(), SchemaSync, &wire.SchemaSyncRequest{Target: 5}, &wire.SchemaSyncResponse{})
	require.ErrorContains(t, err, "invalid")
}

func TestResponsesAreCapped(t *testing.T) {
	t.Parallel()
	server, client := newTestHost(t), newTestHost(t)
	Handle(server, HealthPing, slog.New(slog.DiscardHandler), nil,
		func(context.Context, peer.ID, *wire.HealthPingRequest) (*wire.HealthPingResponse, error) {
			return &wire.HealthPingResponse{ClickhouseError: string(make([]byte, HealthPing.MaxResponse))}, nil
		})
	connect(t, client, server)
	err := Call(t.Context(), client, server.ID(), HealthPing, &wire.HealthPingRequest{}, &wire.HealthPingResponse{})
	require.True(t, IsCode(err, CodeInternal), "got %v", err)
	require.ErrorContains(t, err, "exceeds")
}

func TestEveryRequestValidates(t *testing.T) {
	t.Parallel()
	// A summary ticket as hubs asked for one before summaries became
	// AnalyticsQuery replies: FlightQuery field 5, summary_of.
	summaryTicket := &wire.FlightQuery{Table: "neuron"}
	summaryTicket.ProtoReflect().SetUnknown(protowire.AppendString(protowire.AppendTag(nil, 5, protowire.BytesType), "volume"))
	bad := map[string]validator{
		"flight summary":    &wire.GetFlightEndpointRequest{Query: summaryTicket},
		"analytics q one":   &wire.AnalyticsQueryRequest{Kind: wire.KindSummary, Table: "neuron", Column: "x", Quantiles: []float64{1}},
		"register name":     &wire.RegisterRequest{Name: "Lab A"},
		"sync order":        &wire.SchemaSyncRequest{Target: 1, Migrations: []*wire.Migration{{Version: 2, Name: "a", Checksum: "c", Sql: "s"}}},
		"catalog id":        &wire.DatasetCatalogRequest{DatasetIds: []string{"x'); DROP TABLE datasets; --"}},
		"flight no query":   &wire.GetFlightEndpointRequest{},
		"flight table":      &wire.GetFlightEndpointRequest{Query: &wire.FlightQuery{Table: "neuron; DROP"}},
		"analytics kind":    &wire.AnalyticsQueryRequest{Kind: "rm -rf", Table: "neuron", Column: "x"},
		"analytics column":  &wire.AnalyticsQueryRequest{Kind: wire.KindSummary, Table: "neuron", Column: "x)"},
		"analytics q":       &wire.AnalyticsQueryRequest{Kind: wire.KindSummary, Table: "neuron", Column: "x", Quantiles: []float64{1.5}},
		"ontology checksum": &wire.OntologySyncRequest{Version: 1, Checksum: "x", Terms: []*wire.OntologyTerm{{Kind: "compartment", Id: "a", Label: "A"}}},
		"ontology parent":   &wire.OntologySyncRequest{Version: 1, Terms: []*wire.OntologyTerm{{Kind: "compartment", Id: "a", Label: "A", ParentId: "b"}}},
	}
	for name, v := range bad {
		require.Error(t, v.Validate(), name)
	}
}
