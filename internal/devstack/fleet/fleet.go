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

	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/p2p"
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
	// SeedDatasets and SeedRows size the synthetic data per node;
	// SeedMeshes is how many rows of each compartment table of each
	// dataset get a stored mesh.
	SeedDatasets, SeedRows, SeedMeshes int
	// Out receives the prefixed output of every process (nil: log files only).
	Out io.Writer
	Log *slog.Logger
	// Fast trades durability for speed (tests).
	Fast bool
	// HubEnv adds settings (SYNDB_*) to the hub processes' environment.
	HubEnv map[string]string
	// TLS serves the API's HTTP and Flight over TLS, with a self-signed
	// certificate for 127.0.0.1 and localhost kept at Root/APICertFile.
	TLS bool
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
		SeedMeshes:   10,
		Restart:      &devstack.DefaultRestartPolicy,
	}
}

// TestOptions returns options on free ports under root, for nodes named names.
func TestOptions(repoRoot, root, binary string, names ...string) (Options, error) {
	ports, err := devstack.FreePorts(names...)
	if err != nil {
		return Options{}, err
	}
	o := Options{Root: root, RepoRoot: repoRoot, Binary: binary, Ports: ports, SeedDatasets: 2, SeedRows: 50, SeedMeshes: 5, Fast: true,
		// A fast health monitor, so tests see transitions in seconds.
		HubEnv: map[string]string{
			"SYNDB_HEALTH_INTERVAL": "500ms", "SYNDB_HEALTH_PROBE_BACKOFF": "1s", "SYNDB_HEALTH_MAX_PROBE_BACKOFF": "4s",
			"SYNDB_HEALTH_PING_TIMEOUT": "3s",
			// Small enough that a test uploads an oversized mesh quickly.
			"SYNDB_MESH_MAX_UPLOAD_BYTES": "1048576",
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
	// The worker's profiles, for benchmarks that look at where its time goes.
	o.HubEnv["SYNDB_WORKER_DEBUG_ADDR"] = fmt.Sprintf("127.0.0.1:%d", free())
	// Every test node registers from 127.0.0.1, a thousand of them at once
	// in the fan-out benchmark.
	o.HubEnv["SYNDB_P2P_REGISTER_PER_IP"], o.HubEnv["SYNDB_P2P_REGISTER_IP_BURST"] = "1000", "2000"
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
	// APICert is the API's certificate file with Options.TLS ("" without):
	// clients trust it to reach APIURL and the Flight server.
	APICert string
	// APIClient is an HTTP client of the API: one that trusts APICert.
	APIClient *http.Client
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
	f.APIURL, f.APIClient = fmt.Sprintf("http://127.0.0.1:%d", o.APIPort), http.DefaultClient
	var apiTLS map[string]string
	if o.TLS {
		if apiTLS, f.APIClient, err = f.apiTLS(); err != nil {
			return f, err
		}
		f.APIURL, f.APICert = fmt.Sprintf("https://127.0.0.1:%d", o.APIPort), apiTLS["SYNDB_TLS_CERT"]
	}
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
	for _, extra := range []map[string]string{apiTLS, o.HubEnv} {
		for k, v := range extra {
			f.Env[k] = v
		}
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
