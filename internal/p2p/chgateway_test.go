package p2p

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
)

// chStreams counts the ClickHouse streams open from h to p.
func chStreams(h host.Host, p peer.ID) int {
	n := 0
	for _, c := range h.Network().ConnsToPeer(p) {
		for _, s := range c.GetStreams() {
			if s.Protocol() == ClickHouseStream {
				n++
			}
		}
	}
	return n
}

// TestCHGatewayStalledNode: a node that takes a connection's Hello and then
// never answers nor closes its stream holds nothing once the hub's
// ClickHouse hangs up (the stream is gone), and Close ends a connection
// still waiting on such a node and returns.
func TestCHGatewayStalledNode(t *testing.T) {
	t.Parallel()
	hub, node := newTestHost(t), newTestHost(t)
	hellos := make(chan struct{}, 2)
	stalled := make(chan struct{})
	node.SetStreamHandler(ClickHouseStream, func(s network.Stream) {
		_, _ = ReadCHHello(bufio.NewReader(s))
		hellos <- struct{}{}
		// Never answers, and holds its end of the stream open whatever
		// comes, until the test ends.
		_, _ = io.Copy(io.Discard, s)
		<-stalled
		_ = s.Reset()
	})
	gw, err := StartCHGateway(t.Context(), hub, CHGatewayConfig{Addr: "127.0.0.1:0",
		Resolve: func(context.Context, string) (peer.AddrInfo, error) {
			return peer.AddrInfo{ID: node.ID(), Addrs: node.Addrs()}, nil
		}}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = gw.Close() })
	t.Cleanup(func() { close(stalled) }) // first: a gateway that hangs does not hang the test
	connect := func() net.Conn {
		c, err := new(net.Dialer).DialContext(t.Context(), "tcp", gw.Addr())
		require.NoError(t, err)
		_, err = c.Write(CHHello{ClientName: "ClickHouse", Revision: 54412, User: "lab-a"}.Append(nil))
		require.NoError(t, err)
		select {
		case <-hellos:
		case <-time.After(10 * time.Second):
			t.Fatal("the node never got the Hello")
		}
		return c
	}

	require.NoError(t, connect().Close())
	require.Eventually(t, func() bool { return chStreams(hub, node.ID()) == 0 }, 10*time.Second, 10*time.Millisecond,
		"the stream to the stalled node outlives its connection")

	waiting := connect()
	t.Cleanup(func() { _ = waiting.Close() })
	closed := make(chan error, 1)
	go func() { closed <- gw.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return while a connection waited on a stalled node")
	}
	require.Zero(t, chStreams(hub, node.ID()))
}
