package p2p

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// PeerAddr is the net.Addr of one end of a libp2p stream: the peer's
// identity, which the secure channel under the stream authenticated.
type PeerAddr struct{ ID peer.ID }

// Network is "libp2p".
func (PeerAddr) Network() string { return "libp2p" }

// String is the peer ID.
func (a PeerAddr) String() string { return a.ID.String() }

// streamConn is a libp2p stream used as a net.Conn: its addresses are the
// two peers'.
type streamConn struct{ network.Stream }

// LocalAddr is this host's peer ID.
func (c streamConn) LocalAddr() net.Addr { return PeerAddr{ID: c.Conn().LocalPeer()} }

// RemoteAddr is the remote peer's ID.
func (c streamConn) RemoteAddr() net.Addr { return PeerAddr{ID: c.Conn().RemotePeer()} }

// StreamListener is a net.Listener whose connections are the inbound
// streams of one protocol on a host, so that a stream server (gRPC) serves
// over libp2p. admit is asked about each stream's connection before it is
// queued: a refused stream is reset, and the server never sees a byte of
// it. Close stops the handler, resets the streams not yet accepted and
// returns once no handler goroutine of the listener is left.
type StreamListener struct {
	h     host.Host
	id    protocol.ID
	admit func(c network.Conn) error
	// streams hands admitted streams to Accept; done is closed by Close.
	streams chan network.Stream
	done    chan struct{}

	mu       sync.Mutex
	closed   bool
	handlers sync.WaitGroup
}

// ListenStreams registers a stream handler for id on h and returns the
// listener its streams are accepted from; admit, when not nil, decides
// which connections may open one.
func ListenStreams(h host.Host, id protocol.ID, admit func(c network.Conn) error) *StreamListener {
	l := &StreamListener{h: h, id: id, admit: admit, streams: make(chan network.Stream), done: make(chan struct{})}
	h.SetStreamHandler(id, l.handle)
	return l
}

// handle queues an admitted stream for Accept until the listener closes.
func (l *StreamListener) handle(s network.Stream) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = s.Reset()
		return
	}
	l.handlers.Add(1)
	l.mu.Unlock()
	defer l.handlers.Done()
	if l.admit != nil {
		if err := l.admit(s.Conn()); err != nil {
			_ = s.Reset()
			return
		}
	}
	select {
	case l.streams <- s:
	case <-l.done:
		_ = s.Reset()
	}
}

// Accept returns the next admitted stream as a net.Conn; net.ErrClosed
// once the listener is closed.
func (l *StreamListener) Accept() (net.Conn, error) {
	select {
	case s := <-l.streams:
		return streamConn{s}, nil
	case <-l.done:
		return nil, fmt.Errorf("accept %s stream: %w", l.id, net.ErrClosed)
	}
}

// Close removes the stream handler, resets the streams waiting to be
// accepted and waits for the listener's handlers to return. Streams
// already accepted are their server's to close. It is safe to call more
// than once.
func (l *StreamListener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.h.RemoveStreamHandler(l.id)
	close(l.done)
	l.handlers.Wait()
	return nil
}

// Addr is this host's peer ID.
func (l *StreamListener) Addr() net.Addr { return PeerAddr{ID: l.h.ID()} }

// DialStream opens a stream to p on protocol id from h and returns it as
// a net.Conn. A peer reachable only through a relay is dialled over the
// limited (relayed) connection, within the relay's limits.
func DialStream(ctx context.Context, h host.Host, p peer.ID, id protocol.ID) (net.Conn, error) {
	ctx = network.WithAllowLimitedConn(ctx, string(id))
	s, err := h.NewStream(ctx, p, id)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s stream to %s: %w", ErrUnreachable, id, p, err)
	}
	return streamConn{s}, nil
}

// DialStream learns addrs for peerID (when given) and opens a stream to
// it on protocol id; when the peer cannot be reached there, it looks up
// its current addresses with the finder, when it has one, and tries once
// more.
func (c *Client) DialStream(ctx context.Context, peerID string, addrs []string, id protocol.ID) (net.Conn, error) {
	p, err := c.learn(peerID, addrs)
	if err != nil {
		return nil, err
	}
	conn, err := DialStream(ctx, c.h, p, id)
	if err == nil || c.finder == nil || ctx.Err() != nil {
		return conn, err
	}
	ai, ferr := c.finder.FindPeer(ctx, p)
	if ferr != nil {
		return nil, fmt.Errorf("%w (and %w)", err, ferr)
	}
	c.h.Peerstore().AddAddrs(p, ai.Addrs, peerstore.AddressTTL)
	return DialStream(ctx, c.h, p, id)
}
