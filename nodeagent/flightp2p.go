package nodeagent

import (
	"context"
	"fmt"

	"google.golang.org/grpc/peer"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/p2p"
)

// libp2pScheme starts the Flight location of a node that serves Flight
// over libp2p: libp2p://<peer ID>.
const libp2pScheme = "libp2p://"

// overLibp2p reports whether the node's data plane is its libp2p host.
func (a *Agent) overLibp2p() bool { return a.cfg.DataPlane != config.DataPlaneDirect }

// flightLocation is where GetFlightEndpoint tells the hub to read: the
// node's own peer over libp2p, or its public Flight TCP address (grpcs://
// when the listener serves TLS).
func (a *Agent) flightLocation() string {
	if a.overLibp2p() {
		return libp2pScheme + a.host.ID().String()
	}
	if a.flightTLS != nil {
		return "grpcs://" + a.flightPublicAddr()
	}
	return "grpc://" + a.flightPublicAddr()
}

// registeredFlightPin is the certificate pin the node registers beside its
// Flight address: none when it registers no address or serves plaintext.
func (a *Agent) registeredFlightPin() []byte {
	if a.registeredFlightAddr() == "" {
		return nil
	}
	return a.flightPin
}

// registeredFlightAddr is the Flight address the node registers with the
// hub: none over libp2p, where the hub does not dial one (and would refuse
// the loopback listener's address of a node on another host).
func (a *Agent) registeredFlightAddr() string {
	if a.overLibp2p() {
		return ""
	}
	return a.flightPublicAddr()
}

// serveFlightOverLibp2p serves the Flight server on p2p.FlightProtocol as
// well, when libp2p is the data plane, to the peers guard admits: a
// refused stream is reset before gRPC reads a byte of it. The gRPC server
// owns the listener: stopping it closes the listener.
func (a *Agent) serveFlightOverLibp2p(guard p2p.Guard) {
	if a.flight == nil || !a.overLibp2p() {
		return
	}
	lis := p2p.ListenStreams(a.host, p2p.FlightProtocol, guard.Admit)
	a.wg.Go(func() {
		if err := a.flight.Serve(lis); err != nil {
			a.log.Error("flight server over libp2p stopped", "err", err)
		}
	})
	a.log.Info("flight server listening over libp2p", "protocol", p2p.FlightProtocol)
}

// flightPeer is the libp2p peer a Flight call comes from, when it came
// over a libp2p stream.
func flightPeer(p *peer.Peer) (p2p.PeerAddr, bool) {
	if p == nil {
		return p2p.PeerAddr{}, false
	}
	pa, ok := p.Addr.(p2p.PeerAddr)
	return pa, ok
}

// errTicketHolder refuses a ticket presented over libp2p by a peer other
// than the one it was issued to.
var errTicketHolder = fmt.Errorf("%w: issued to another peer", ErrTicket)

// transport is how a Flight call reached the server: "libp2p" or "tcp".
func transport(ctx context.Context) string {
	gp, _ := peer.FromContext(ctx)
	if _, ok := flightPeer(gp); ok {
		return "libp2p"
	}
	return "tcp"
}
