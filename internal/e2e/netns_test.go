package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/wire"
	"github.com/syndb/federation/schemas"
	"github.com/syndb/federation/workers"
)

// The netns tests put peers on separate network stacks, made by the test
// with ip netns and veth pairs: a node on another host of the LAN for mDNS,
// and a node whose network has no route to the hub for the relay. The hub
// side runs as a copy of this test binary inside its namespace (a "role"),
// the node side as the real `syndb node`.

const roleEnv = "SYNDB_NETNS_ROLE"

// roleReport is what a hub role prints, as one JSON line, when done.
type roleReport struct {
	Node          string   `json:"node"`
	NodePeer      string   `json:"node_peer"`
	NodeAddrs     []string `json:"node_addrs"`
	PingName      string   `json:"ping_name"`
	SyncFrom      int32    `json:"sync_from"`
	SyncTo        int32    `json:"sync_to"`
	Applied       int      `json:"applied"`
	Limited       bool     `json:"limited"`
	DirectDialErr string   `json:"direct_dial_err"`
	Error         string   `json:"error,omitempty"`
}

// runRole runs one hub role inside a namespace and prints its report.
func runRole(role string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rep, err := hubRole(ctx, role)
	if err != nil {
		rep.Error = err.Error()
	}
	b, _ := json.Marshal(rep)
	fmt.Println("REPORT " + string(b))
	return 0
}

// hubRole is a hub's libp2p side: it accepts the first registration, then
// pings the node (mdns) or syncs its schema (relay), over whatever
// connection libp2p finds.
func hubRole(ctx context.Context, role string) (roleReport, error) {
	var rep roleReport
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	key, err := p2p.LoadOrCreateKey(os.Getenv("SYNDB_P2P_KEY_FILE"))
	if err != nil {
		return rep, err
	}
	relays, err := p2p.ParseAddrInfos(nonEmpty(os.Getenv("SYNDB_P2P_RELAYS")))
	if err != nil {
		return rep, err
	}
	hc := p2p.HostConfig{Key: key, Listen: strings.Split(os.Getenv("SYNDB_P2P_LISTEN"), ","), Relays: relays}
	if len(relays) > 0 {
		hc.Reachability = "private"
	}
	h, err := p2p.NewHost(hc)
	if err != nil {
		return rep, err
	}
	defer func() { _ = h.Close() }()
	disc, err := p2p.StartDiscovery(ctx, h, p2p.DiscoveryConfig{Bootstrap: relays, Server: true, MDNS: role == "mdns"}, log)
	if err != nil {
		return rep, err
	}
	defer func() { _ = disc.Close() }()
	disc.Advertise(ctx, p2p.HubNamespace)
	go p2p.KeepReservations(ctx, h, relays, log)

	regs := make(chan *wire.RegisterRequest, 1)
	froms := make(chan peer.ID, 1)
	p2p.Handle(h, p2p.Register, log, nil, func(_ context.Context, from peer.ID, req *wire.RegisterRequest) (*wire.RegisterResponse, error) {
		select {
		case regs <- req:
			froms <- from
		default:
		}
		return &wire.RegisterResponse{Name: req.GetName(), TargetSchema: 1}, nil
	})
	var reg *wire.RegisterRequest
	select {
	case reg = <-regs:
	case <-ctx.Done():
		return rep, fmt.Errorf("no node registered: %w", ctx.Err())
	}
	node := <-froms
	rep.Node, rep.NodePeer, rep.NodeAddrs = reg.GetName(), node.String(), reg.GetAddrs()
	cl := p2p.NewClient(h, disc)
	var ping wire.HealthPingResponse
	if err := cl.Call(ctx, node.String(), reg.GetAddrs(), p2p.HealthPing, &wire.HealthPingRequest{Nonce: 1}, &ping); err != nil {
		return rep, fmt.Errorf("ping node: %w", err)
	}
	rep.PingName = ping.GetName()
	if role == "relay" {
		migs, err := schemas.ClickHouseMigrations()
		if err != nil {
			return rep, err
		}
		var resp wire.SchemaSyncResponse
		req := &wire.SchemaSyncRequest{Target: int32(len(migs)), Migrations: wire.FromMigrations(migs)}
		if err := cl.Call(ctx, node.String(), reg.GetAddrs(), p2p.SchemaSync, req, &resp); err != nil {
			return rep, fmt.Errorf("schema sync through the relay: %w", err)
		}
		rep.SyncFrom, rep.SyncTo, rep.Applied = resp.GetFrom(), resp.GetTo(), len(resp.GetApplied())
		// Show that the node's own address is out of reach from here.
		if d := os.Getenv("SYNDB_NETNS_NODE_TCP"); d != "" {
			dialer := net.Dialer{Timeout: 2 * time.Second}
			c, err := dialer.DialContext(ctx, "tcp", d)
			if err == nil {
				_ = c.Close()
				rep.DirectDialErr = ""
			} else {
				rep.DirectDialErr = err.Error()
			}
		}
	}
	for _, c := range h.Network().ConnsToPeer(node) {
		rep.Limited = rep.Limited || c.Stat().Limited
	}
	return rep, nil
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// netns is a network namespace made by a test.
type netns struct{ name string }

// needNetns skips the test unless it can make namespaces (root and ip).
func needNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netns tests need root to create network namespaces (ip netns); run as root to include them")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("netns tests need the ip command (iproute2)")
	}
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "ip", args...).CombinedOutput()
	require.NoError(t, err, "ip %s: %s", strings.Join(args, " "), out)
}

// newNetns makes a namespace with loopback up, removed at cleanup.
func newNetns(t *testing.T, name string) netns {
	t.Helper()
	_ = exec.CommandContext(context.Background(), "ip", "netns", "del", name).Run()
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() { _ = exec.CommandContext(context.Background(), "ip", "netns", "del", name).Run() })
	ipCmd(t, "-n", name, "link", "set", "lo", "up")
	return netns{name: name}
}

// link joins two ends with a veth pair: "" is the root namespace. Each end
// gets its address (CIDR) and comes up.
func link(t *testing.T, a netns, aIf, aAddr string, b netns, bIf, bAddr string) {
	t.Helper()
	_ = exec.CommandContext(context.Background(), "ip", "link", "del", aIf).Run()
	ipCmd(t, "link", "add", aIf, "type", "veth", "peer", "name", bIf)
	t.Cleanup(func() { _ = exec.CommandContext(context.Background(), "ip", "link", "del", aIf).Run() })
	for _, end := range []struct {
		ns       netns
		ifc, adr string
	}{{a, aIf, aAddr}, {b, bIf, bAddr}} {
		pre := []string{}
		if end.ns.name != "" {
			ipCmd(t, "link", "set", end.ifc, "netns", end.ns.name)
			pre = []string{"-n", end.ns.name}
		}
		ipCmd(t, append(pre, "addr", "add", end.adr, "dev", end.ifc)...)
		ipCmd(t, append(pre, "link", "set", end.ifc, "up")...)
	}
}

// inNetns starts a command in ns, logging its output, stopped at cleanup.
func inNetns(t *testing.T, ns netns, env []string, out io.Writer, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(context.Background(), "ip", append([]string{"netns", "exec", ns.name, name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return cmd
}

// runHubRole runs a hub role in ns and returns its report.
func runHubRole(t *testing.T, ns netns, role string, env []string) roleReport {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.CommandContext(t.Context(), "ip", "netns", "exec", ns.name, self)
	cmd.Env = append(os.Environ(), append(env, roleEnv+"="+role)...)
	cmd.Stderr = &prefixWriter{t: t, prefix: "hub: "}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var rep roleReport
	found := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "REPORT "); ok {
			require.NoError(t, json.Unmarshal([]byte(line), &rep))
			found = true
		}
	}
	require.NoError(t, cmd.Wait())
	require.True(t, found, "the hub role printed no report")
	require.Empty(t, rep.Error)
	return rep
}

// prefixWriter logs each write through t.
type prefixWriter struct {
	t      *testing.T
	prefix string
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(w.prefix + l)
	}
	return len(p), nil
}

func peerIDOf(t *testing.T, keyFile string) string {
	t.Helper()
	id, err := p2p.PeerIDFromKeyFile(keyFile)
	require.NoError(t, err)
	return id.String()
}

// TestNetnsMDNS: a node on the hub's LAN, with no hub address, bootstrap
// peers or hub ID configured, finds the hub by mDNS and registers; the hub
// then reaches it.
func TestNetnsMDNS(t *testing.T) {
	needNetns(t)
	tag := fmt.Sprintf("%04x", os.Getpid()%0xffff)
	hubNS, labNS := newNetns(t, "sdbm-hub-"+tag), newNetns(t, "sdbm-lab-"+tag)
	link(t, hubNS, "sm"+tag+"h", "10.232.0.1/24", labNS, "sm"+tag+"l", "10.232.0.2/24")
	// Multicast needs a route on the LAN interface.
	ipCmd(t, "-n", hubNS.name, "route", "add", "224.0.0.0/4", "dev", "sm"+tag+"h")
	ipCmd(t, "-n", labNS.name, "route", "add", "224.0.0.0/4", "dev", "sm"+tag+"l")

	dir := t.TempDir()
	inNetns(t, labNS, []string{
		"SYNDB_NODE_NAME=lab-lan",
		"SYNDB_HUB_ADDR=", "SYNDB_HUB_ID=", "SYNDB_P2P_BOOTSTRAP=", "SYNDB_P2P_MDNS=true",
		"SYNDB_P2P_LISTEN=/ip4/10.232.0.2/udp/4102/quic-v1,/ip4/10.232.0.2/tcp/4102",
		"SYNDB_P2P_KEY_FILE=" + filepath.Join(dir, "node.key"),
		"SYNDB_CLICKHOUSE_ADDR=10.232.0.2:9000",
	}, &prefixWriter{t: t, prefix: "node: "}, syndbBin, "node")

	start := time.Now()
	rep := runHubRole(t, hubNS, "mdns", []string{
		"SYNDB_P2P_KEY_FILE=" + filepath.Join(dir, "hub.key"),
		"SYNDB_P2P_LISTEN=/ip4/10.232.0.1/udp/4101/quic-v1,/ip4/10.232.0.1/tcp/4101",
	})
	t.Logf("node found the hub by mDNS and registered in %s", time.Since(start))
	require.Equal(t, "lab-lan", rep.Node)
	require.Equal(t, peerIDOf(t, filepath.Join(dir, "node.key")), rep.NodePeer)
	require.Equal(t, "lab-lan", rep.PingName, "the node answers the hub it trusted")
	require.False(t, rep.Limited)
}

// TestNetnsRelay: hub and node each on their own network, neither with a
// route to the other; both reach a relay in between. The node, given only
// the relay (as DHT bootstrap peer and relay) and the hub's ID, registers
// through it, and the hub's HealthPing and SchemaSync reach the node
// through it too.
func TestNetnsRelay(t *testing.T) {
	needNetns(t)
	tag := fmt.Sprintf("%04x", os.Getpid()%0xffff)
	root := netns{}
	hubNS, labNS := newNetns(t, "sdbr-hub-"+tag), newNetns(t, "sdbr-lab-"+tag)
	link(t, root, "sr"+tag+"h0", "10.231.1.1/24", hubNS, "sr"+tag+"h1", "10.231.1.2/24")
	link(t, root, "sr"+tag+"l0", "10.231.2.1/24", labNS, "sr"+tag+"l1", "10.231.2.2/24")
	dir := t.TempDir()

	// The node's warehouse, on the lab's side of the relay host.
	chHTTP, err := devstack.FreePort()
	require.NoError(t, err)
	chTCP, err := devstack.FreePort()
	require.NoError(t, err)
	ch := &devstack.ClickHouse{Name: "clickhouse-netns", Dir: filepath.Join(dir, "ch"), HTTPPort: chHTTP, TCPPort: chTCP,
		Host: "10.231.2.1", ClientNets: []string{"10.231.2.0/24"}, LogFile: filepath.Join(dir, "ch.log")}
	require.NoError(t, ch.Start(t.Context()))
	t.Cleanup(func() { _ = ch.Stop(context.Background()) })

	// The relay: `syndb relay`'s code, in this (root) namespace.
	relayPort, err := devstack.FreePort()
	require.NoError(t, err)
	relayKey := filepath.Join(dir, "relay.key")
	relayID := peerIDOf(t, relayKey)
	relayCfg := config.Relay{
		Discovery: config.Discovery{Reachability: "public"}, KeyFile: relayKey,
		Listen: []string{
			fmt.Sprintf("/ip4/10.231.1.1/udp/%d/quic-v1", relayPort), fmt.Sprintf("/ip4/10.231.2.1/udp/%d/quic-v1", relayPort),
		},
		MaxCircuitDuration: 10 * time.Minute, MaxCircuitData: 64 << 20,
	}
	require.NoError(t, relayCfg.Validate())
	rctx, stopRelay := context.WithCancel(context.Background())
	relayDone := make(chan error, 1)
	go func() { relayDone <- workers.RunRelay(rctx, relayCfg, slog.New(slog.NewTextHandler(os.Stderr, nil))) }()
	t.Cleanup(func() {
		stopRelay()
		if err := <-relayDone; err != nil {
			t.Logf("relay stopped: %v", err)
		}
	})
	relayForHub := fmt.Sprintf("/ip4/10.231.1.1/udp/%d/quic-v1/p2p/%s", relayPort, relayID)
	relayForLab := fmt.Sprintf("/ip4/10.231.2.1/udp/%d/quic-v1/p2p/%s", relayPort, relayID)

	hubKey := filepath.Join(dir, "hub.key")
	inNetns(t, labNS, []string{
		"SYNDB_NODE_NAME=lab-nat",
		"SYNDB_HUB_ADDR=", "SYNDB_HUB_ID=" + peerIDOf(t, hubKey), "SYNDB_P2P_MDNS=false",
		"SYNDB_P2P_BOOTSTRAP=" + relayForLab, "SYNDB_P2P_RELAYS=" + relayForLab, "SYNDB_P2P_REACHABILITY=private",
		"SYNDB_P2P_LISTEN=/ip4/10.231.2.2/udp/4202/quic-v1,/ip4/10.231.2.2/tcp/4202",
		"SYNDB_P2P_KEY_FILE=" + filepath.Join(dir, "node.key"),
		"SYNDB_CLICKHOUSE_ADDR=" + ch.Addr(), "SYNDB_CLICKHOUSE_DATABASE=syndb",
	}, &prefixWriter{t: t, prefix: "node: "}, syndbBin, "node")

	start := time.Now()
	rep := runHubRole(t, hubNS, "relay", []string{
		"SYNDB_P2P_KEY_FILE=" + hubKey,
		"SYNDB_P2P_LISTEN=/ip4/10.231.1.2/udp/4201/quic-v1",
		"SYNDB_P2P_RELAYS=" + relayForHub,
		"SYNDB_NETNS_NODE_TCP=10.231.2.2:4202",
	})
	t.Logf("node registered and synced through the relay in %s", time.Since(start))
	migs, err := schemas.ClickHouseMigrations()
	require.NoError(t, err)
	require.Equal(t, "lab-nat", rep.Node)
	require.Equal(t, "lab-nat", rep.PingName)
	require.Equal(t, int32(len(migs)), rep.SyncTo)
	require.Equal(t, len(migs), rep.Applied, "every migration applied once, through the relay")
	require.True(t, rep.Limited, "the hub's connection to the node is relayed")
	require.Contains(t, rep.DirectDialErr, "unreachable", "the hub has no route to the node")
	require.Contains(t, strings.Join(rep.NodeAddrs, " "), "/p2p-circuit", "the node advertised its relayed address")
}
