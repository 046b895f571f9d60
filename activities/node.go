package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
	"google.golang.org/protobuf/proto"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/p2p"
)

// nodeCaller sends one request to a node over libp2p.
type nodeCaller interface {
	Call(ctx context.Context, peerID string, addrs []string, spec p2p.Spec, req, resp proto.Message) error
}

// clusterStore lists the registered nodes.
type clusterStore interface {
	Clusters(ctx context.Context, activeOnly bool) ([]domain.Cluster, error)
}

// nodeRef is how an activity's payload names a registered node.
func nodeRef(c domain.Cluster) domain.NodeRef {
	return domain.NodeRef{Name: c.Name, PeerID: c.PeerID, Addrs: c.Addrs, SchemaVersion: c.SchemaVersion,
		FlightCertSHA256: c.FlightCertSHA256, FlightAddr: c.FlightAddr}
}

// heartbeatEvery is how often a long activity tells Temporal it is alive;
// the workflows' heartbeat timeouts are a few times this.
const heartbeatEvery = 5 * time.Second

// heartbeat records a heartbeat every heartbeatEvery until the returned stop
// is called, so a worker that dies mid-call is noticed within the heartbeat
// timeout rather than the whole start-to-close timeout. It heartbeats with
// the activity's own context: a heartbeat cut short would fail the activity.
// progress gives each heartbeat's details.
func heartbeat(ctx context.Context, progress func() any) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(heartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx, progress())
			}
		}
	}()
	return func() { close(done); <-finished }
}
