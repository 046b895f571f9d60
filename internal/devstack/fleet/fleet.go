// Package fleet runs a whole federation on one machine: the real backing
// services (package devstack), then the hub's worker and API and one node
// agent per lab as `syndb` processes, with seeded node warehouses and an API
// key. `syndb dev` and the integration tests both use it.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/seed"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/schemas"
)

// NodeSpec describes one dev node agent.
type NodeSpec struct {
	Name       string
	P2PPort    int
	FlightPort int
}

// Options configures a dev federation.
type Options struct {
	// Root holds all data and logs (e.g. <repo>/.dev).
	Root string
	// RepoRoot is where tools/ and .dev/bin live.
	RepoRoot string
	// Binary is the syndb executable to run the hub and nodes with.
	Binary string
	Ports  devstack.Ports
	// APIPort and HubP2PPort are the hub's ports; RelayP2PPort is the
	// federation relay's (the DHT bootstrap peer every process starts from).
	APIPort, HubP2PPort, RelayP2PPort int
	// HubFlightPort is the hub's Arrow Flight port.
	HubFlightPort int
	// GatewayPort is the worker's ClickHouse gateway (SQL over libp2p).
	GatewayPort int
	Nodes       []NodeSpec
	// SeedDatasets and SeedRows size the synthetic data per node.
	SeedDatasets, SeedRows int
	// Out receives the prefixed output of every process (nil: log files only).
	Out io.Writer
	Log *slog.Logger
	// Fast trades durability for speed (tests).
	Fast bool
	// HubEnv adds settings (SYNDB_*) to the hub processes' environment.
	HubEnv map[string]string
	// Restart, when set, makes the federation a supervisor tree: every
	// service once the stack is ready, and every hub and node process once
	// the federation is, is restarted by this policy when it exits; one that
	// crash-loops ends Wait. Nil: a process that exits stays down.
	Restart *devstack.RestartPolicy
}

// GatewayPassword is the dev password of the worker's ClickHouse gateway.
const GatewayPassword = "syndb-hub-gateway-dev"

// DevOptions returns the options of `syndb dev`: the ports of the README.
func DevOptions(repoRoot string) Options {
	return Options{
		Root:          filepath.Join(repoRoot, ".dev"),
		RepoRoot:      repoRoot,
		Ports:         devstack.DevPorts(),
		APIPort:       8080,
		HubP2PPort:    4001,
		RelayP2PPort:  4000,
		HubFlightPort: 50051,
		GatewayPort:   9010,
		Nodes: []NodeSpec{
			{Name: "lab-a", P2PPort: 4002, FlightPort: 50052},
			{Name: "lab-b", P2PPort: 4003, FlightPort: 50053},
		},
		SeedDatasets: 3,
		SeedRows:     200,
		Restart:      &devstack.DefaultRestartPolicy,
	}
}

// TestOptions returns options on free ports under root, for nodes named names.
func TestOptions(repoRoot, root, binary string, names ...string) (Options, error) {
	ports, err := devstack.FreePorts(names...)
	if err != nil {
		return Options{}, err
	}
	o := Options{Root: root, RepoRoot: repoRoot, Binary: binary, Ports: ports, SeedDatasets: 2, SeedRows: 50, Fast: true,
		// A fast health monitor, so tests see transitions in seconds.
		HubEnv: map[string]string{
			"SYNDB_HEALTH_INTERVAL": "500ms", "SYNDB_HEALTH_PROBE_BACKOFF": "1s", "SYNDB_HEALTH_MAX_PROBE_BACKOFF": "4s",
			"SYNDB_HEALTH_PING_TIMEOUT": "3s",
		}}
	free := func() int {
		if err != nil {
			return 0
		}
		var p int
		p, err = devstack.FreePort()
		return p
	}
	o.APIPort, o.HubP2PPort, o.RelayP2PPort, o.HubFlightPort, o.GatewayPort = free(), free(), free(), free(), free()
	for _, n := range names {
		o.Nodes = append(o.Nodes, NodeSpec{Name: n, P2PPort: free(), FlightPort: free()})
	}
	return o, err
}

// Federation is a running dev federation.
type Federation struct {
	opts  Options
	Stack *devstack.Stack
	// Env is the hub's environment (SYNDB_*), as written to syndb.env.
	Env map[string]string
	// APIURL is the hub API's base URL.
	APIURL string
	// APIKey is a key for the API.
	APIKey string
	// HubAddr is the hub's libp2p multiaddr, with its peer ID. Nodes are
	// not given it: they find the hub through the relay's DHT.
	HubAddr string
	// RelayAddr is the relay's multiaddr: the DHT bootstrap peer.
	RelayAddr string

	hub    map[string]*devstack.Process
	nodes  map[string]*devstack.Process
	tokens map[string]string
	// supervised is set once the federation is ready under a restart policy:
	// from then on every process it starts is supervised.
	supervised bool
}

// Start starts everything and returns once the API is ready and every node
// has registered. On failure it stops what it started.
func Start(ctx context.Context, o Options) (f *Federation, err error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	f = &Federation{opts: o, hub: map[string]*devstack.Process{}, nodes: map[string]*devstack.Process{}, tokens: map[string]string{}}
	defer func() {
		if err != nil {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			_ = f.Stop(stopCtx)
		}
	}()
	names := make([]string, 0, len(o.Nodes))
	for _, n := range o.Nodes {
		names = append(names, n.Name)
	}
	if len(o.Ports.Nodes) != len(o.Nodes) {
		return f, fmt.Errorf("ports for %d nodes, specs for %d", len(o.Ports.Nodes), len(o.Nodes))
	}
	f.Stack = &devstack.Stack{Root: o.Root, RepoRoot: o.RepoRoot, Ports: o.Ports, Out: o.Out, Log: o.Log, Fast: o.Fast,
		Restart: o.Restart}
	if err := f.Stack.Start(ctx); err != nil {
		return f, err
	}

	hubKey := filepath.Join(o.Root, "hub", "hub.key")
	hubID, err := p2p.PeerIDFromKeyFile(hubKey)
	if err != nil {
		return f, err
	}
	f.HubAddr = fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1/p2p/%s", o.HubP2PPort, hubID)
	relayKey := filepath.Join(o.Root, "relay", "relay.key")
	relayID, err := p2p.PeerIDFromKeyFile(relayKey)
	if err != nil {
		return f, err
	}
	f.RelayAddr = fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1/p2p/%s", o.RelayP2PPort, relayID)
	f.APIURL = fmt.Sprintf("http://127.0.0.1:%d", o.APIPort)
	f.Env = map[string]string{
		"SYNDB_POSTGRES_DSN":     f.Stack.Postgres.DSN(),
		"SYNDB_TEMPORAL_ADDRESS": fmt.Sprintf("127.0.0.1:%d", o.Ports.Temporal),
		"SYNDB_TEMPORAL_UI_URL":  fmt.Sprintf("http://127.0.0.1:%d", o.Ports.TemporalUI),
		"SYNDB_CLICKHOUSE_ADDR":  f.Stack.Hub.Addr(),
		// Federated queries run as the hub's read-only query user.
		"SYNDB_CLICKHOUSE_QUERY_USER":     f.Stack.Hub.QueryUser,
		"SYNDB_CLICKHOUSE_QUERY_PASSWORD": f.Stack.Hub.QueryPassword,
		"SYNDB_S3_ENDPOINT":               fmt.Sprintf("127.0.0.1:%d", o.Ports.MinIO),
		"SYNDB_API_ADDR":                  fmt.Sprintf("127.0.0.1:%d", o.APIPort),
		"SYNDB_API_PUBLIC_URL":            f.APIURL,
		"SYNDB_API_FLIGHT_ADDR":           fmt.Sprintf("127.0.0.1:%d", o.HubFlightPort),
		"SYNDB_API_FLIGHT_PUBLIC_ADDR":    fmt.Sprintf("127.0.0.1:%d", o.HubFlightPort),
		"SYNDB_GATEWAY_ADDR":              fmt.Sprintf("127.0.0.1:%d", o.GatewayPort),
		"SYNDB_QUERY_GATEWAYS":            fmt.Sprintf("127.0.0.1:%d", o.GatewayPort),
		"SYNDB_GATEWAY_PASSWORD":          GatewayPassword,
		"SYNDB_P2P_LISTEN":                fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1,/ip4/127.0.0.1/tcp/%d", o.HubP2PPort, o.HubP2PPort),
		"SYNDB_P2P_KEY_FILE":              hubKey,
		"SYNDB_HUB_ID":                    hubID.String(),
		"SYNDB_P2P_BOOTSTRAP":             f.RelayAddr,
		// Every dev process shares one host: mDNS would only echo it, and
		// would let concurrent federations (dev and tests) find each other.
		"SYNDB_P2P_MDNS":            "false",
		"SYNDB_S3_ACCESS_KEY":       devstack.MinIOUser,
		"SYNDB_S3_SECRET_KEY":       devstack.MinIOPassword,
		"SYNDB_TEMPORAL_NAMESPACE":  "default",
		"SYNDB_CLICKHOUSE_DATABASE": "syndb",
	}
	for k, v := range o.HubEnv {
		f.Env[k] = v
	}

	if err := f.seed(ctx); err != nil {
		return f, err
	}
	if f.APIKey, err = f.apiKey(ctx); err != nil {
		return f, err
	}
	if err := f.enroll(ctx, names); err != nil {
		return f, err
	}

	relay, err := f.spawn(ctx, "relay", []string{"relay"}, f.env(map[string]string{
		"SYNDB_P2P_LISTEN":    fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1,/ip4/127.0.0.1/tcp/%d", o.RelayP2PPort, o.RelayP2PPort),
		"SYNDB_P2P_KEY_FILE":  relayKey,
		"SYNDB_P2P_BOOTSTRAP": "",
	}))
	if err != nil {
		return f, err
	}
	f.hub["relay"] = relay
	hubEnv := f.env(nil)
	for _, svc := range []string{"worker", "api"} {
		p, err := f.spawn(ctx, svc, []string{svc}, hubEnv)
		if err != nil {
			return f, err
		}
		f.hub[svc] = p
	}
	for _, n := range o.Nodes {
		if err := f.StartNode(ctx, n.Name); err != nil {
			return f, err
		}
	}
	if err := f.waitReady(ctx, names); err != nil {
		return f, err
	}
	if o.Restart != nil {
		f.supervised = true
		for _, p := range f.hub {
			p.Supervise(*o.Restart, o.Log)
		}
		for _, p := range f.nodes {
			p.Supervise(*o.Restart, o.Log)
		}
	}
	return f, nil
}

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

func (f *Federation) env(extra map[string]string) []string {
	out := os.Environ()
	for k, v := range f.Env {
		out = append(out, k+"="+v)
	}
	for k, v := range extra {
		out = append(out, k+"="+v)
	}
	return out
}

func (f *Federation) spawn(ctx context.Context, name string, args, env []string) (*devstack.Process, error) {
	p, err := devstack.StartProcess(ctx, devstack.ProcessSpec{
		Name: name,
		Path: f.opts.Binary,
		Args: args,
		Env:  env,
		// Not the repository: its .dev/syndb.env must not leak into a
		// federation that set its own environment.
		Dir:     f.opts.Root,
		LogFile: filepath.Join(f.opts.Root, "logs", name+".log"),
		Out:     f.opts.Out,
		// Hub and node processes need the services: a supervised one that
		// exits is restarted once they answer.
		BeforeRestart: f.Stack.Ready,
	})
	if err == nil && f.supervised {
		p.Supervise(*f.opts.Restart, f.opts.Log)
	}
	return p, err
}

// seed writes synthetic datasets into every node's warehouse, bringing it to
// the schema the data needs (and no further: the rest is schema sync's work).
func (f *Federation) seed(ctx context.Context) error {
	migs, err := schemas.ClickHouseMigrations()
	if err != nil {
		return err
	}
	for _, n := range f.opts.Nodes {
		conn, err := clickhouse.Open(ctx, config.ClickHouse{Addr: f.Stack.Nodes[n.Name].Addr(), User: "default", Database: "syndb"})
		if err != nil {
			return fmt.Errorf("seed %s: %w", n.Name, err)
		}
		res, err := seed.Seed(ctx, conn, migs, seed.Options{Node: n.Name, Datasets: f.opts.SeedDatasets, Rows: f.opts.SeedRows})
		_ = conn.Close()
		if err != nil {
			return fmt.Errorf("seed %s: %w", n.Name, err)
		}
		f.opts.Log.Info("node seeded", "node", n.Name, "datasets_created", res.Created, "datasets_present", res.Skipped,
			"rows", res.Rows, "schema_version", res.SchemaTo)
	}
	return nil
}

// enroll creates the registry entries of the dev nodes, with enrollment
// tokens, unless a name is already bound to that node's identity. A name
// bound to another identity (its key file was deleted) is re-enrolled.
func (f *Federation) enroll(ctx context.Context, names []string) error {
	st, err := store.Open(ctx, f.Stack.Postgres.DSN())
	if err != nil {
		return err
	}
	defer st.Close()
	for _, name := range names {
		id, err := f.NodePeerID(name)
		if err != nil {
			return err
		}
		c, err := st.Cluster(ctx, name)
		switch {
		case err == nil && c.PeerID == id && c.Status == "active":
			continue
		case err == nil && c.PeerID != "" && c.Status == "active":
			f.opts.Log.Warn("node identity changed; re-enrolling", "node", name)
			if _, err := st.RevokeCluster(ctx, name); err != nil {
				return err
			}
		case err != nil && !errors.Is(err, domain.ErrNotFound):
			return err
		}
		e, err := st.CreateCluster(ctx, name, time.Hour, "")
		if err != nil {
			return fmt.Errorf("enroll %s: %w", name, err)
		}
		f.tokens[name] = e.Token
	}
	return nil
}

// apiKey returns the dev API key kept in Root/dev-api-key, creating it (and
// the hub schema) when missing or no longer valid.
func (f *Federation) apiKey(ctx context.Context) (string, error) {
	st, err := store.Open(ctx, f.Stack.Postgres.DSN())
	if err != nil {
		return "", err
	}
	defer st.Close()
	path := filepath.Join(f.opts.Root, "dev-api-key")
	if raw, err := os.ReadFile(path); err == nil {
		key := strings.TrimSpace(string(raw))
		if _, err := st.Authenticate(ctx, key); err == nil {
			return key, nil
		}
	}
	key, err := st.CreateAPIKey(ctx, "dev", "dev", "admin")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save dev api key: %w", err)
	}
	return key, nil
}

// waitReady polls until the API is ready and every node registered with its
// own peer ID, or a process died.
func (f *Federation) waitReady(ctx context.Context, names []string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	st, err := store.Open(ctx, f.Stack.Postgres.DSN())
	if err != nil {
		return err
	}
	defer st.Close()
	want := map[string]string{}
	for _, n := range names {
		if want[n], err = f.NodePeerID(n); err != nil {
			return err
		}
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		last = f.ready(ctx, st, want)
		if last == nil {
			return nil
		}
		if err := f.died(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("federation not ready: %w", last)
		case <-tick.C:
		}
	}
}

func (f *Federation) ready(ctx context.Context, st *store.Store, want map[string]string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.APIURL+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("api /readyz answered %d", resp.StatusCode)
	}
	cs, err := st.Clusters(ctx, true)
	if err != nil {
		return err
	}
	got := map[string]string{}
	for _, c := range cs {
		got[c.Name] = c.PeerID
	}
	for name, id := range want {
		if got[name] != id {
			return fmt.Errorf("node %s has not registered yet", name)
		}
	}
	return nil
}

// died reports a process that exited on its own.
func (f *Federation) died() error {
	for name, p := range f.hub {
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited: %w (see %s)", name, p.Err(), filepath.Join(f.opts.Root, "logs", name+".log"))
		default:
		}
	}
	for name, p := range f.nodes {
		select {
		case <-p.Done():
			return fmt.Errorf("node %s exited: %w (see %s)", name, p.Err(), filepath.Join(f.opts.Root, "logs", name+".log"))
		default:
		}
	}
	return nil
}

// Wait blocks until ctx ends (nil) or a process of the federation is down
// for good: it exited unsupervised, or crash-looped under Options.Restart.
func (f *Federation) Wait(ctx context.Context) error {
	procs := map[string]*devstack.Process{}
	if f.Stack != nil {
		procs = f.Stack.Processes()
	}
	for name, p := range f.hub {
		procs[name] = p
	}
	for name, p := range f.nodes {
		procs[name] = p
	}
	return devstack.WaitAny(ctx, procs)
}

// Stop stops the nodes, the API, the worker, then the services.
func (f *Federation) Stop(ctx context.Context) error {
	var errs []error
	for _, name := range sortedKeys(f.nodes) {
		errs = append(errs, f.nodes[name].Stop(ctx, 10*time.Second))
	}
	for _, name := range []string{"api", "worker", "relay"} {
		if p, ok := f.hub[name]; ok {
			errs = append(errs, p.Stop(ctx, 20*time.Second))
		}
	}
	if f.Stack != nil {
		errs = append(errs, f.Stack.Stop(ctx))
	}
	return errors.Join(errs...)
}

// WriteEnv writes the hub environment to path as KEY=value lines.
func (f *Federation) WriteEnv(path string) error {
	var b strings.Builder
	b.WriteString("# Written by `syndb dev`: the settings of the running dev federation.\n")
	for _, k := range sortedKeys(f.Env) {
		b.WriteString(k + "=" + strconv.Quote(f.Env[k]) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
