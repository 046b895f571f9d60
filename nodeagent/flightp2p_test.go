package nodeagent

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/flightcodec"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/wire"
)

// libp2pFlight connects to the Flight location ep names, libp2p://<peer>,
// from h: each gRPC connection is a stream on p2p.FlightProtocol.
func libp2pFlight(tb testing.TB, h host.Host, ep *wire.GetFlightEndpointResponse) *flightFixture {
	tb.Helper()
	id, ok := strings.CutPrefix(ep.GetLocation(), libp2pScheme)
	require.True(tb, ok, ep.GetLocation())
	p, err := peer.Decode(id)
	require.NoError(tb, err)
	c, err := flight.NewClientWithMiddleware("passthrough:///"+id, nil, nil,
		grpc.WithTransportCredentials(insecure.NewCredentials()), flightcodec.DialOption(),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return p2p.DialStream(ctx, h, p, p2p.FlightProtocol)
		}))
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = c.Close() })
	return &flightFixture{client: c}
}

// tcpFlight connects to the node's Flight TCP listener.
func tcpFlight(tb testing.TB, a *Agent) *flightFixture {
	tb.Helper()
	return flightClient(tb, &wire.GetFlightEndpointResponse{Location: "grpc://" + a.cfg.FlightAddr}, "")
}

// TestFlightOverLibp2p: a node on the libp2p data plane hands out its own
// peer as the Flight location, and a DoGet over a libp2p stream from the
// hub returns the rows the table holds, the same as over its TCP listener
// (on 127.0.0.1); a ticket is still used once.
func TestFlightOverLibp2p(t *testing.T) {
	t.Parallel()
	f := startAgentOn(t, "lab-p2pflight", "flight_p2p", config.DataPlaneLibp2p)
	conn := openDB(t, f.db)
	rows := everyRows()
	createEvery(t, conn, "every", rows)
	require.Equal(t, uint64(len(rows)), count(t, conn, "every"))
	host, _, err := net.SplitHostPort(f.agent.cfg.FlightAddr)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", host)

	cases := []struct {
		name   string
		client func(ep *wire.GetFlightEndpointResponse) *flightFixture
	}{
		{"libp2p", func(ep *wire.GetFlightEndpointResponse) *flightFixture { return libp2pFlight(t, f.hub, ep) }},
		{"tcp", func(*wire.GetFlightEndpointResponse) *flightFixture { return tcpFlight(t, f.agent) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ep := f.endpoint(t, &wire.GetFlightEndpointRequest{Query: &wire.FlightQuery{Table: "every"}})
			require.Equal(t, libp2pScheme+f.agent.PeerID().String(), ep.GetLocation())
			c := tc.client(ep)
			_, got, err := c.getRows(t, ep.GetTicket())
			require.NoError(t, err)
			require.Equal(t, expectedRows(rows), got)
			_, _, err = c.getRows(t, ep.GetTicket())
			requireCode(t, codes.PermissionDenied, err)
			require.Contains(t, err.Error(), ErrTicketUsed.Error())
		})
	}
}

// TestRegisteredFlightAddr: a node registers its Flight TCP address on the
// direct data plane, and none on the libp2p one, where the hub dials none.
func TestRegisteredFlightAddr(t *testing.T) {
	t.Parallel()
	for _, plane := range []string{config.DataPlaneDirect, config.DataPlaneLibp2p} {
		t.Run(plane, func(t *testing.T) {
			t.Parallel()
			f := startAgentOn(t, "lab-reg-"+plane, "flight_reg_"+plane, plane)
			want := f.agent.cfg.FlightAddr
			if plane == config.DataPlaneLibp2p {
				want = ""
			}
			require.Equal(t, want, f.registered.GetFlightAddr())
			require.NotEmpty(t, f.agent.cfg.FlightAddr, "the TCP listener runs on either plane")
		})
	}
}

// TestFlightOverLibp2pRefusals: a stranger (a fresh identity) that opens
// /syndb/flight/1.0.0 has its stream reset before gRPC reads a byte; even
// with a ticket the node signed for it, its DoGet fails without reaching
// the Flight handler, which would have used the ticket up: the same
// ticket then reads the rows over TCP. Over libp2p, a ticket issued to
// another peer is refused from the hub.
func TestFlightOverLibp2pRefusals(t *testing.T) {
	t.Parallel()
	f := startAgentOn(t, "lab-p2pstranger", "flight_p2p_stranger", config.DataPlaneLibp2p)
	conn := openDB(t, f.db)
	rows := everyRows()
	createEvery(t, conn, "every", rows)
	stranger, err := p2p.NewHost(p2p.HostConfig{Key: newKey(t), Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = stranger.Close() })
	node := peer.AddrInfo{ID: f.agent.PeerID(), Addrs: f.agent.host.Addrs()}
	require.NoError(t, stranger.Connect(t.Context(), node))
	forStranger := signTicket(t, f.agent.key, &wire.FlightTicket{Node: "lab-p2pstranger", Holder: stranger.ID().String(),
		HolderIps: []string{"127.0.0.1"}, ExpiresAt: timestamppb.New(time.Now().Add(time.Minute)), Query: &wire.FlightQuery{Table: "every"}})

	t.Run("raw stream", func(t *testing.T) {
		s, err := p2p.DialStream(t.Context(), stranger, node.ID, p2p.FlightProtocol)
		require.NoError(t, err)
		defer func() { _ = s.Close() }()
		require.NoError(t, s.SetDeadline(time.Now().Add(10*time.Second)))
		_, _ = s.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
		_, err = io.ReadFull(s, make([]byte, 1))
		require.ErrorIs(t, err, network.ErrReset)
	})
	t.Run("DoGet", func(t *testing.T) {
		ep := &wire.GetFlightEndpointResponse{Location: libp2pScheme + node.ID.String()}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		stream, err := libp2pFlight(t, stranger, ep).client.DoGet(ctx, &flight.Ticket{Ticket: forStranger})
		if err == nil {
			_, err = stream.Recv()
		}
		requireCode(t, codes.Unavailable, err)
	})
	t.Run("ticket of another peer", func(t *testing.T) {
		ep := f.endpoint(t, &wire.GetFlightEndpointRequest{Query: &wire.FlightQuery{Table: "every"}})
		_, _, err := libp2pFlight(t, f.hub, ep).getRows(t, forStranger)
		requireCode(t, codes.PermissionDenied, err)
		require.Contains(t, err.Error(), "issued to peer "+stranger.ID().String())
	})
	// The Flight handler never saw the stranger's ticket: it is unused.
	_, got, err := tcpFlight(t, f.agent).getRows(t, forStranger)
	require.NoError(t, err)
	require.Equal(t, expectedRows(rows), got)
}

// TestFlightOverLibp2pTCP: a node and hub that prefer TCP
// (SYNDB_P2P_PREFER=tcp) connect over TCP with TLS 1.3, and a DoGet over
// that libp2p connection returns the rows the table holds.
func TestFlightOverLibp2pTCP(t *testing.T) {
	t.Parallel()
	f := startAgentWith(t, "lab-p2ptcp", "flight_p2p_tcp", config.DataPlaneLibp2p, func(c *config.Node) { c.Prefer = "tcp" })
	conns := f.hub.Network().ConnsToPeer(f.agent.PeerID())
	require.Len(t, conns, 1)
	require.Equal(t, "tcp", conns[0].ConnState().Transport)
	require.Equal(t, "/tls/1.0.0", string(conns[0].ConnState().Security))

	conn := openDB(t, f.db)
	rows := everyRows()
	createEvery(t, conn, "every", rows)
	ep := f.endpoint(t, &wire.GetFlightEndpointRequest{Query: &wire.FlightQuery{Table: "every"}})
	_, got, err := libp2pFlight(t, f.hub, ep).getRows(t, ep.GetTicket())
	require.NoError(t, err)
	require.Equal(t, expectedRows(rows), got)
	require.Len(t, f.hub.Network().ConnsToPeer(f.agent.PeerID()), 1, "the transfer rode the one TCP connection")
}
