package fleet

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/p2p"
)

// StartNode starts (or restarts) the agent of node name.
func (f *Federation) StartNode(ctx context.Context, name string) error {
	return f.StartNodeWith(ctx, name, nil)
}

// StartNodeWith starts (or restarts) the agent of node name with extra
// settings (SYNDB_*), e.g. SYNDB_NODE_ANSWER_DELAY.
func (f *Federation) StartNodeWith(ctx context.Context, name string, extraEnv map[string]string) error {
	i := slices.IndexFunc(f.opts.Nodes, func(n NodeSpec) bool { return n.Name == name })
	if i < 0 {
		return fmt.Errorf("no node %q", name)
	}
	n := f.opts.Nodes[i]
	env := f.env(map[string]string{
		"SYNDB_ENROLLMENT_TOKEN":            f.tokens[n.Name],
		"SYNDB_NODE_NAME":                   n.Name,
		"SYNDB_P2P_LISTEN":                  fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1,/ip4/127.0.0.1/tcp/%d", n.P2PPort, n.P2PPort),
		"SYNDB_P2P_KEY_FILE":                filepath.Join(f.opts.Root, "nodes", n.Name, "node.key"),
		"SYNDB_FLIGHT_ADDR":                 fmt.Sprintf("127.0.0.1:%d", n.FlightPort),
		"SYNDB_CLICKHOUSE_ADDR":             f.Stack.Nodes[n.Name].Addr(),
		"SYNDB_CLICKHOUSE_GATEWAY_USER":     devstack.GatewayUser,
		"SYNDB_CLICKHOUSE_GATEWAY_PASSWORD": devstack.GatewayPassword,
	})
	tlsEnv, err := f.flightTLS(n.Name)
	if err != nil {
		return err
	}
	for _, extra := range []map[string]string{tlsEnv, extraEnv} {
		for k, v := range extra {
			env = append(env, k+"="+v)
		}
	}
	p, err := f.spawn(ctx, n.Name, []string{"node"}, env)
	if err != nil {
		return err
	}
	f.nodes[n.Name] = p
	return nil
}

// StopNode stops the agent of node name (gracefully, or with SIGKILL).
func (f *Federation) StopNode(ctx context.Context, name string, kill bool) error {
	return stopOne(ctx, f.nodes, "node", name, kill, 10*time.Second)
}

// StopHub stops a hub process ("worker" or "api"), gracefully or with SIGKILL.
func (f *Federation) StopHub(ctx context.Context, name string, kill bool) error {
	return stopOne(ctx, f.hub, "hub process", name, kill, 20*time.Second)
}

// stopOne stops and forgets procs[name]: SIGKILL, or a graceful stop
// bounded by grace.
func stopOne(ctx context.Context, procs map[string]*devstack.Process, kind, name string, kill bool, grace time.Duration) error {
	p, ok := procs[name]
	if !ok {
		return fmt.Errorf("%s %q is not running", kind, name)
	}
	delete(procs, name)
	if kill {
		return p.Kill()
	}
	return p.Stop(ctx, grace)
}

// StartHub starts (or restarts) a hub process: "worker" or "api".
func (f *Federation) StartHub(ctx context.Context, name string) error {
	if name != "worker" && name != "api" {
		return fmt.Errorf("no hub process %q (worker or api)", name)
	}
	if _, ok := f.hub[name]; ok {
		return fmt.Errorf("hub process %q is already running", name)
	}
	p, err := f.spawn(ctx, name, []string{name}, f.env(nil))
	if err != nil {
		return err
	}
	f.hub[name] = p
	return nil
}

// HubPid returns the process ID of a running hub process ("worker", "api").
func (f *Federation) HubPid(name string) (int, bool) {
	p, ok := f.hub[name]
	if !ok {
		return 0, false
	}
	return p.Pid(), true
}

// ExtraNode is a node started by a test beside the federation's own: its
// warehouse is a database of its own on an existing ClickHouse server.
type ExtraNode struct {
	Name string
	// ClickHouseAddr and Database are where its warehouse lives.
	ClickHouseAddr, Database string
	// Env adds settings (SYNDB_*) to the agent's environment.
	Env map[string]string
}

// StartExtraNode enrolls n (when its name is new) and starts its agent.
// Stop it with StopNode; revoke it through the API when done.
func (f *Federation) StartExtraNode(ctx context.Context, n ExtraNode) error {
	if _, ok := f.nodes[n.Name]; ok {
		return fmt.Errorf("node %q is already running", n.Name)
	}
	if _, ok := f.tokens[n.Name]; !ok {
		if err := f.enroll(ctx, []string{n.Name}); err != nil {
			return err
		}
	}
	p2pPort, err := devstack.FreePort()
	if err != nil {
		return err
	}
	flightPort, err := devstack.FreePort()
	if err != nil {
		return err
	}
	extra := map[string]string{
		"SYNDB_ENROLLMENT_TOKEN":    f.tokens[n.Name],
		"SYNDB_NODE_NAME":           n.Name,
		"SYNDB_P2P_LISTEN":          fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1,/ip4/127.0.0.1/tcp/%d", p2pPort, p2pPort),
		"SYNDB_P2P_KEY_FILE":        filepath.Join(f.opts.Root, "nodes", n.Name, "node.key"),
		"SYNDB_FLIGHT_ADDR":         fmt.Sprintf("127.0.0.1:%d", flightPort),
		"SYNDB_CLICKHOUSE_ADDR":     n.ClickHouseAddr,
		"SYNDB_CLICKHOUSE_DATABASE": n.Database,
		// A test's own server has no gateway user: the agent logs the
		// hub's connections in as its default user.
		"SYNDB_CLICKHOUSE_GATEWAY_USER": "default",
	}
	for k, v := range n.Env {
		extra[k] = v
	}
	p, err := f.spawn(ctx, n.Name, []string{"node"}, f.env(extra))
	if err != nil {
		return err
	}
	f.nodes[n.Name] = p
	return nil
}

// NodePeerID returns the libp2p identity of node name.
func (f *Federation) NodePeerID(name string) (string, error) {
	id, err := p2p.PeerIDFromKeyFile(filepath.Join(f.opts.Root, "nodes", name, "node.key"))
	return id.String(), err
}
