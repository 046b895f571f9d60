package p2p

import (
	"bufio"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
)

// CHResolver returns the peer of the node named node, with the addresses
// it registered, or an error when no such node may be read.
type CHResolver func(ctx context.Context, node string) (peer.AddrInfo, error)

// CHGatewayConfig configures a ClickHouse gateway.
type CHGatewayConfig struct {
	// Addr is the TCP address the gateway listens on (host:port).
	Addr string
	// Resolve names the node of a connection's Hello user.
	Resolve CHResolver
	// Finder, when not nil, looks up a node's current addresses when it
	// cannot be reached at those Resolve gave.
	Finder PeerFinder
	// Password, when not empty, is the password a connection's Hello must
	// carry; others are refused with WRONG_PASSWORD.
	Password string
	// HelloTimeout bounds reading the client's Hello and opening the
	// stream to the node (DefaultHelloTimeout when zero).
	HelloTimeout time.Duration
}

// DefaultHelloTimeout bounds a connection's start at a gateway.
const DefaultHelloTimeout = 10 * time.Second

// CHGateway is the hub's end of SQL over libp2p: a TCP listener that
// speaks to the hub's ClickHouse as if it were a node's. Each connection's
// Hello names the node in its user; the gateway opens a ClickHouseStream to
// that node and forwards the connection over it both ways, the Hello
// without its password. The node logs its own ClickHouse in as its local
// user. A connection that names no reachable node gets a ClickHouse
// NETWORK_ERROR exception, on which the client fails over.
type CHGateway struct {
	h       host.Host
	cfg     CHGatewayConfig
	log     *slog.Logger
	ln      net.Listener
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closeMu sync.Once
}

// StartCHGateway listens on cfg.Addr (ctx bounds only that) and serves
// connections until Close.
func StartCHGateway(ctx context.Context, h host.Host, cfg CHGatewayConfig, log *slog.Logger) (*CHGateway, error) {
	if cfg.Resolve == nil {
		return nil, errors.New("clickhouse gateway: no resolver")
	}
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = DefaultHelloTimeout
	}
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("clickhouse gateway: listen on %s: %w", cfg.Addr, err)
	}
	life, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g := &CHGateway{h: h, cfg: cfg, log: log.With("component", "clickhouse-gateway"), ln: ln, ctx: life, cancel: cancel}
	g.wg.Go(g.accept)
	g.log.Info("clickhouse gateway listening", "addr", ln.Addr().String())
	return g, nil
}

// Addr returns the address the gateway listens on.
func (g *CHGateway) Addr() string { return g.ln.Addr().String() }

// Close stops listening, ends every forwarded connection and returns when
// they are all gone.
func (g *CHGateway) Close() error {
	var err error
	g.closeMu.Do(func() {
		g.cancel()
		err = g.ln.Close()
		g.wg.Wait()
	})
	if err != nil {
		return fmt.Errorf("close clickhouse gateway: %w", err)
	}
	return nil
}

func (g *CHGateway) accept() {
	for {
		c, err := g.ln.Accept()
		if err != nil {
			if g.ctx.Err() == nil {
				g.log.Warn("clickhouse gateway stopped accepting", "err", err)
			}
			return
		}
		g.wg.Go(func() { g.serve(c) })
	}
}

// serve forwards one connection: Hello, stream, then bytes both ways.
func (g *CHGateway) serve(c net.Conn) {
	stop := context.AfterFunc(g.ctx, func() { _ = c.Close() })
	defer stop()
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(g.cfg.HelloTimeout))
	cr := bufio.NewReader(c)
	hello, err := ReadCHHello(cr)
	if err != nil {
		g.log.Debug("clickhouse gateway: not a clickhouse hello", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	node := hello.User
	if subtle.ConstantTimeCompare([]byte(hello.Password), []byte(g.cfg.Password)) != 1 {
		g.log.Warn("clickhouse gateway: wrong password", "node", node, "remote", c.RemoteAddr().String())
		g.refuseCode(c, CHWrongPassword, "syndb gateway: wrong gateway password")
		return
	}
	s, err := g.open(node)
	if err != nil {
		g.log.Warn("clickhouse gateway: node not reachable", "node", node, "err", err)
		g.refuse(c, fmt.Sprintf("syndb gateway: node %q is not reachable over libp2p", node))
		return
	}
	hello.Password = ""
	if _, err := s.Write(hello.Append(nil)); err != nil {
		_ = s.Reset()
		g.refuse(c, fmt.Sprintf("syndb gateway: node %q refused the connection", node))
		return
	}
	_ = c.SetDeadline(time.Time{})
	_ = s.SetDeadline(time.Time{})
	if n := forward(c, cr, s); n == 0 {
		g.refuse(c, fmt.Sprintf("syndb gateway: node %q refused the connection or its ClickHouse does not answer", node))
	}
}

// open resolves node and opens a ClickHouseStream to it, looking the peer
// up once with the finder when its registered addresses fail.
func (g *CHGateway) open(node string) (network.Stream, error) {
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.HelloTimeout)
	defer cancel()
	ai, err := g.cfg.Resolve(ctx, node)
	if err != nil {
		return nil, err
	}
	g.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.AddressTTL)
	ctx = network.WithAllowLimitedConn(ctx, string(ClickHouseStream))
	s, err := g.h.NewStream(ctx, ai.ID, ClickHouseStream)
	if err != nil && g.cfg.Finder != nil && ctx.Err() == nil {
		found, ferr := g.cfg.Finder.FindPeer(ctx, ai.ID)
		if ferr != nil {
			return nil, fmt.Errorf("open stream to %s: %w (and %w)", ai.ID, err, ferr)
		}
		g.h.Peerstore().AddAddrs(ai.ID, found.Addrs, peerstore.AddressTTL)
		s, err = g.h.NewStream(ctx, ai.ID, ClickHouseStream)
	}
	if err != nil {
		return nil, fmt.Errorf("open stream to %s: %w", ai.ID, err)
	}
	return s, nil
}

// refuse answers c with a NETWORK_ERROR exception, best effort.
func (g *CHGateway) refuse(c net.Conn, msg string) { g.refuseCode(c, CHNetworkError, msg) }

func (g *CHGateway) refuseCode(c net.Conn, code int32, msg string) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(AppendCHException(nil, code, msg))
}

// forward copies cr (the rest of c) to s and s to c until either side
// ends, then closes s; it returns the bytes s sent back, so a stream that
// ended before any answer can be reported. A ClickHouse client never
// half-closes: once c's side ends (it hung up, or Close closed it), the
// stream is reset, so a node that stalls cannot hold the forward open.
func forward(c net.Conn, cr io.Reader, s network.Stream) int64 {
	up := make(chan struct{})
	go func() {
		defer close(up)
		_, _ = io.Copy(s, cr)
		_ = s.Reset()
	}()
	n, _ := io.Copy(c, s)
	if n == 0 {
		_ = s.Reset()
		_ = c.SetReadDeadline(time.Now())
		<-up
		return 0
	}
	_ = s.Close()
	_ = c.Close()
	<-up
	return n
}
