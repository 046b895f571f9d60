package nodeagent

import (
	"bufio"
	"context"
	"io"
	"net"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/syndb/federation/internal/p2p"
)

// The node's end of SQL over libp2p: the hub's gateway forwards each
// connection of the hub's ClickHouse on a p2p.ClickHouseStream. The agent
// serves such streams only from its hub, refusing any other peer before it
// reads a byte or dials its ClickHouse; it rewrites the connection's Hello
// to log in as the lab's local gateway user (read-only, to the warehouse
// database) and forwards the rest as it comes.

// chHelloTimeout bounds reading the Hello and dialling the local ClickHouse.
const chHelloTimeout = 10 * time.Second

// chGatewaySpec names the stream protocol in refusal logs.
var chGatewaySpec = p2p.Spec{ID: p2p.ClickHouseStream}

// startCHGateway serves ClickHouseStream when a gateway user is configured,
// each stream admitted by guard first.
func (a *Agent) startCHGateway(guard p2p.Guard) {
	if a.cfg.GatewayUser == "" {
		a.log.Info("sql over libp2p is off: no SYNDB_CLICKHOUSE_GATEWAY_USER")
		return
	}
	a.host.SetStreamHandler(p2p.ClickHouseStream, func(s network.Stream) { a.serveCH(guard, s) })
}

// serveCH forwards one stream to the local ClickHouse.
func (a *Agent) serveCH(guard p2p.Guard, s network.Stream) {
	if err := guard.Admit(s.Conn()); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.SetDeadline(time.Now().Add(chHelloTimeout))
	sr := bufio.NewReader(s)
	hello, err := p2p.ReadCHHello(sr)
	if err != nil {
		a.log.Warn("clickhouse stream: bad hello", "err", err)
		_ = s.Reset()
		return
	}
	hello.User, hello.Password = a.cfg.GatewayUser, a.cfg.GatewayPassword
	hello.Database = a.cfg.ClickHouse.Database
	ctx, cancel := context.WithTimeout(context.Background(), chHelloTimeout)
	defer cancel()
	ch, err := new(net.Dialer).DialContext(ctx, "tcp", a.cfg.GatewayAddr)
	if err != nil {
		a.log.Warn("clickhouse stream: local clickhouse does not answer", "addr", a.cfg.GatewayAddr, "err", err)
		_, _ = s.Write(p2p.AppendCHException(nil, p2p.CHNetworkError, "syndb node: its ClickHouse does not answer"))
		_ = s.Close()
		return
	}
	defer func() { _ = ch.Close() }()
	if _, err := ch.Write(hello.Append(nil)); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.SetDeadline(time.Time{})
	// The hub's gateway never half-closes: once the stream's side ends (the
	// hub's ClickHouse hung up), the local connection is closed, so a
	// ClickHouse that stalls cannot hold the forward open.
	up := make(chan struct{})
	go func() {
		defer close(up)
		_, _ = io.Copy(ch, sr)
		_ = ch.Close()
	}()
	_, _ = io.Copy(s, ch)
	_ = s.Close()
	_ = ch.Close()
	<-up
}
