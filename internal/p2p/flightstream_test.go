package p2p

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	grpcpeer "google.golang.org/grpc/peer"
)

// echo accepts from l and echoes each connection back, until l closes;
// it records the remote address of every accepted connection.
func echo(l net.Listener, accepted chan<- net.Addr) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		accepted <- c.RemoteAddr()
		go func() {
			defer func() { _ = c.Close() }()
			_, _ = io.Copy(c, c)
		}()
	}
}

// TestStreamListener: a peer admit allows gets its stream accepted as a
// net.Conn named by the two peer IDs, and its bytes echoed; a peer admit
// refuses has its stream reset and never reaches Accept.
func TestStreamListener(t *testing.T) {
	t.Parallel()
	server, friend, stranger := newTestHost(t), newTestHost(t), newTestHost(t)
	var asked atomic.Int32
	l := ListenStreams(server, FlightProtocol, func(c network.Conn) error {
		asked.Add(1)
		if c.RemotePeer() != friend.ID() {
			return errors.New("not a friend")
		}
		return nil
	})
	t.Cleanup(func() { require.NoError(t, l.Close()) })
	accepted := make(chan net.Addr, 4)
	go echo(l, accepted)
	require.Equal(t, PeerAddr{ID: server.ID()}, l.Addr())

	cases := []struct {
		name  string
		from  func() (peerID peer.ID, dial func() (net.Conn, error))
		admit bool
	}{
		{"friend", func() (peer.ID, func() (net.Conn, error)) {
			connect(t, friend, server)
			return friend.ID(), func() (net.Conn, error) { return DialStream(t.Context(), friend, server.ID(), FlightProtocol) }
		}, true},
		{"stranger", func() (peer.ID, func() (net.Conn, error)) {
			connect(t, stranger, server)
			return stranger.ID(), func() (net.Conn, error) { return DialStream(t.Context(), stranger, server.ID(), FlightProtocol) }
		}, false},
	}
	for _, tc := range cases {
		before := asked.Load()
		id, dial := tc.from()
		c, err := dial()
		require.NoError(t, err, tc.name) // negotiation succeeds; admit runs after it
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		require.Equal(t, PeerAddr{ID: server.ID()}, c.RemoteAddr(), tc.name)
		require.Equal(t, PeerAddr{ID: id}, c.LocalAddr(), tc.name)
		_, werr := c.Write([]byte("ping"))
		buf := make([]byte, 4)
		_, rerr := io.ReadFull(c, buf)
		if tc.admit {
			require.NoError(t, werr, tc.name)
			require.NoError(t, rerr, tc.name)
			require.Equal(t, "ping", string(buf))
			require.Equal(t, PeerAddr{ID: id}, <-accepted)
		} else {
			require.ErrorIs(t, rerr, network.ErrReset, tc.name)
			require.Empty(t, accepted, "a refused stream was accepted")
		}
		require.Equal(t, before+1, asked.Load(), "admit asked once per stream: %s", tc.name)
		_ = c.Close()
	}
}

// TestStreamListenerClose: Close resets a stream no one accepted, waits
// for its handler, makes Accept fail with net.ErrClosed and removes the
// protocol, so later streams are refused at negotiation.
func TestStreamListenerClose(t *testing.T) {
	t.Parallel()
	server, client := newTestHost(t), newTestHost(t)
	admitted := make(chan struct{})
	l := ListenStreams(server, FlightProtocol, func(network.Conn) error { close(admitted); return nil })
	connect(t, client, server)
	c, err := DialStream(t.Context(), client, server.ID(), FlightProtocol)
	require.NoError(t, err)
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = c.Write([]byte("x")) // the handler runs once the stream is negotiated
	require.NoError(t, err)
	<-admitted // the handler now waits for an Accept that never comes

	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "a second Close is a no-op")
	_, err = io.ReadFull(c, make([]byte, 1))
	require.ErrorIs(t, err, network.ErrReset)
	_, err = l.Accept()
	require.ErrorIs(t, err, net.ErrClosed)
	// A dial may return before negotiation ends (the client still takes the
	// protocol for served, from identify): the refusal is then the error of
	// the stream's first read. A reset would be a handler that still runs.
	require.Eventually(t, func() bool {
		s, err := DialStream(t.Context(), client, server.ID(), FlightProtocol)
		if err != nil {
			return true
		}
		defer func() { _ = s.Close() }()
		_ = s.SetDeadline(time.Now().Add(2 * time.Second))
		_, _ = s.Write([]byte("x"))
		_, err = s.Read(make([]byte, 1))
		return err != nil && strings.Contains(err.Error(), "protocols not supported")
	}, 10*time.Second, 10*time.Millisecond, "the protocol is still served after Close")
}

// TestGRPCOverStreams: a gRPC server on a StreamListener answers a client
// whose dialer opens streams (the health service stands in for Flight),
// sees the client's peer ID as its address, and stops cleanly.
func TestGRPCOverStreams(t *testing.T) {
	t.Parallel()
	server, client := newTestHost(t), newTestHost(t)
	connect(t, client, server)
	var seen atomic.Value
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if p, ok := grpcpeer.FromContext(ctx); ok {
			seen.Store(p.Addr)
		}
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	l := ListenStreams(server, FlightProtocol, nil)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	cc, err := grpc.NewClient("passthrough:///"+server.ID().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return NewClient(client, nil).DialStream(ctx, server.ID().String(), nil, FlightProtocol)
		}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	resp, err := healthpb.NewHealthClient(cc).Check(t.Context(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
	require.Equal(t, PeerAddr{ID: client.ID()}, seen.Load())

	srv.GracefulStop()
	require.NoError(t, <-served)
	_, err = l.Accept()
	require.ErrorIs(t, err, net.ErrClosed, "stopping the server closed the listener")
}
