package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/syndb/federation/internal/migrate"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/version"
	"github.com/syndb/federation/internal/wire"
)

// clickhouseProbeTimeout bounds the warehouse check of a health ping, well
// inside the hub's ping timeout: a stalled warehouse is reported as failing
// (the node is Degraded) instead of making the whole ping time out.
const clickhouseProbeTimeout = 2 * time.Second

func (a *Agent) handlePing(ctx context.Context, _ peer.ID, req *wire.HealthPingRequest) (*wire.HealthPingResponse, error) {
	resp := &wire.HealthPingResponse{Nonce: req.GetNonce(), Name: a.cfg.Name, AgentVersion: version.String()}
	took, v, err := a.probeClickHouse(ctx)
	if err != nil {
		resp.ClickhouseError = err.Error()
		return resp, nil
	}
	resp.ClickhouseOk, resp.ClickhouseLatency, resp.SchemaVersion = true, durationpb.New(took), int32(v)
	return resp, nil
}

// probeClickHouse runs SELECT 1 on the warehouse and reads its schema
// version, within clickhouseProbeTimeout.
func (a *Agent) probeClickHouse(ctx context.Context) (time.Duration, int, error) {
	ctx, cancel := context.WithTimeout(ctx, clickhouseProbeTimeout)
	defer cancel()
	conn, err := a.conn(ctx)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	var one uint8
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		if ne, ok := errors.AsType[net.Error](err); ctx.Err() != nil || (ok && ne.Timeout()) {
			return 0, 0, fmt.Errorf("clickhouse did not answer SELECT 1 within %s", clickhouseProbeTimeout)
		}
		return 0, 0, fmt.Errorf("clickhouse SELECT 1: %w", err)
	}
	took := time.Since(start)
	v, err := migrate.Version(ctx, conn)
	if err != nil {
		return 0, 0, err
	}
	return took, v, nil
}

func (a *Agent) handleSchemaSync(ctx context.Context, _ peer.ID, req *wire.SchemaSyncRequest) (*wire.SchemaSyncResponse, error) {
	ms := wire.ToMigrations(req.GetMigrations())
	if err := migrate.Verify(ms); err != nil {
		return nil, p2p.Errorf(p2p.CodeInvalid, "%v", err)
	}
	conn, err := a.conn(ctx)
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "clickhouse: %v", err)
	}
	a.syncMu.Lock()
	defer a.syncMu.Unlock()
	res, err := migrate.Apply(ctx, conn, ms, int(req.GetTarget()))
	if errors.Is(err, migrate.ErrDrift) {
		a.log.Error("schema drift: refusing to migrate", "err", err)
		return nil, p2p.Errorf(p2p.CodeDrift, "%v", err)
	}
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "%v", err)
	}
	ledger, err := migrate.Ledger(ctx, conn)
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "%v", err)
	}
	for _, m := range res.Applied {
		a.log.Info("migration applied", "version", m.Version, "name", m.Name, "took", m.Duration)
	}
	return &wire.SchemaSyncResponse{
		From: int32(res.From), To: int32(res.To), Applied: wire.FromApplied(res.Applied), Ledger: wire.FromApplied(ledger),
	}, nil
}

// delayed holds fn's answer back by d (SYNDB_NODE_ANSWER_DELAY), after the
// work is done: the hub sees a slow node whose work has happened.
func delayed[Req, Resp proto.Message](d time.Duration, fn p2p.HandlerFunc[Req, Resp]) p2p.HandlerFunc[Req, Resp] {
	if d <= 0 {
		return fn
	}
	return func(ctx context.Context, from peer.ID, req Req) (Resp, error) {
		resp, err := fn(ctx, from, req)
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			var zero Resp
			return zero, ctx.Err()
		case <-t.C:
		}
		return resp, err
	}
}
