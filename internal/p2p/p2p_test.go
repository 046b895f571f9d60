package p2p

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
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
	Handle(server, ProtoHealthPing, slog.New(slog.DiscardHandler), nil,
		func(_ context.Context, from peer.ID, req *HealthPingRequest) (*HealthPingResponse, error) {
			require.Equal(t, client.ID(), from)
			return &HealthPingResponse{Nonce: req.Nonce, Name: "lab-a", ClickHouseOK: true}, nil
		})
	connect(t, client, server)
	var resp HealthPingResponse
	require.NoError(t, Call(t.Context(), client, server.ID(), ProtoHealthPing, HealthPingRequest{Nonce: 42}, &resp))
	require.Equal(t, uint64(42), resp.Nonce)
	require.Equal(t, "lab-a", resp.Name)
	require.True(t, resp.ClickHouseOK)
}

func TestCallCarriesTypedErrors(t *testing.T) {
	t.Parallel()
	server, client := newTestHost(t), newTestHost(t)
	Handle(server, ProtoSchemaSync, slog.New(slog.DiscardHandler), nil,
		func(context.Context, peer.ID, *SchemaSyncRequest) (*SchemaSyncResponse, error) {
			return nil, Errorf(CodeDrift, "schema drift at version %d", 2)
		})
	connect(t, client, server)
	err := Call(t.Context(), client, server.ID(), ProtoSchemaSync, SchemaSyncRequest{Target: 1}, &SchemaSyncResponse{})
	require.True(t, IsCode(err, CodeDrift), "got %v", err)
	require.Contains(t, err.Error(), "version 2")
}

func TestHandleRefusesUnknownPeers(t *testing.T) {
	t.Parallel()
	server, client := newTestHost(t), newTestHost(t)
	called := false
	Handle(server, ProtoHealthPing, slog.New(slog.DiscardHandler), func(peer.ID) bool { return false },
		func(context.Context, peer.ID, *HealthPingRequest) (*HealthPingResponse, error) {
			called = true
			return &HealthPingResponse{}, nil
		})
	connect(t, client, server)
	err := Call(t.Context(), client, server.ID(), ProtoHealthPing, HealthPingRequest{}, &HealthPingResponse{})
	require.True(t, IsCode(err, CodeUnauthorized), "got %v", err)
	require.False(t, called)
}

func TestCallHonoursContext(t *testing.T) {
	t.Parallel()
	server, client := newTestHost(t), newTestHost(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	Handle(server, ProtoHealthPing, slog.New(slog.DiscardHandler), nil,
		func(context.Context, peer.ID, *HealthPingRequest) (*HealthPingResponse, error) {
			<-release
			return &HealthPingResponse{}, nil
		})
	connect(t, client, server)
	ctx, cancel := context.WithCancel(t.Context())
	go cancel()
	err := Call(ctx, client, server.ID(), ProtoHealthPing, HealthPingRequest{}, &HealthPingResponse{})
	require.Error(t, err)
}

func TestFramesAreCapped(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	var hdr [binary.MaxVarintLen64]byte
	buf.Write(hdr[:binary.PutUvarint(hdr[:], MaxMessageSize+1)])
	var v map[string]any
	err := readFrame(bufio.NewReader(&buf), &v)
	require.ErrorContains(t, err, "exceeds")

	big := make([]byte, MaxMessageSize+1)
	require.ErrorContains(t, writeFrame(&buf, string(big)), "exceeds")
}

func TestFramesRejectGarbage(t *testing.T) {
	t.Parallel()
	for _, in := range [][]byte{{}, {0x05, 'a'}, {0x03, '{', '}', '}'}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		var v HealthPingRequest
		require.Error(t, readFrame(bufio.NewReader(bytes.NewReader(in)), &v), "%q", in)
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
