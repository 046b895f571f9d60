package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/migrate"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/schemas"
)

// nsLab is a node agent in a namespace of its own, with its ClickHouse on
// that namespace's loopback.
type nsLab struct {
	name    string
	ns      netns
	conn    driver.Conn // the oracle: the lab's ClickHouse, dialled in its namespace
	rows    int
	dataset string
}

// netnsTopology is the federation's worker, restarted to reserve a slot on
// a relay in a namespace of its own, with two labs: one reachable only
// through that relay, one reachable straight from the hub's namespace.
type netnsTopology struct {
	nat, direct *nsLab
	relayForLab string
	relayNS     netns
	ifaces      netnsLinks
	// hubPort is the port the hub listens on (QUIC and TCP) on its link to
	// the direct lab, which prefers TCP (SYNDB_P2P_PREFER=tcp).
	hubPort int
}

// netnsLinks names the interfaces of a topology's links: the hub's ends of
// its links to the relay and to the direct lab, and the relay's end of its
// link to the NAT'd lab.
type netnsLinks struct{ hubRelay, hubDirect, relayNat string }

// restartWorker restarts the federation's worker with env on top of its
// settings; the cleanup restarts it as it was.
func restartWorker(t *testing.T, env map[string]string) {
	t.Helper()
	saved := maps.Clone(fed.Env)
	require.NoError(t, fed.StopHub(t.Context(), "worker", false))
	maps.Copy(fed.Env, env)
	t.Cleanup(func() {
		ctx := context.Background()
		_ = fed.StopHub(ctx, "worker", false)
		fed.Env = saved
		require.NoError(t, fed.StartHub(ctx, "worker"))
	})
	require.NoError(t, fed.StartHub(t.Context(), "worker"))
}

// startRelayIn runs `syndb relay` in ns listening on addrs (QUIC, port
// port) with a data budget per circuit, and returns its peer ID.
func startRelayIn(t *testing.T, ns netns, ips []string, port int, maxData int64) string {
	t.Helper()
	key := filepath.Join(t.TempDir(), "relay.key")
	listen := make([]string, 0, len(ips))
	for _, ip := range ips {
		listen = append(listen, fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", ip, port))
	}
	inNetns(t, ns, []string{
		"SYNDB_P2P_LISTEN=" + strings.Join(listen, ","), "SYNDB_P2P_KEY_FILE=" + key, "SYNDB_P2P_BOOTSTRAP=",
		"SYNDB_P2P_REACHABILITY=public", "SYNDB_P2P_MDNS=false",
		"SYNDB_RELAY_MAX_DURATION=10m", fmt.Sprintf("SYNDB_RELAY_MAX_DATA=%d", maxData),
	}, &prefixWriter{t: t, prefix: "relay: "}, syndbBin, "relay")
	return peerIDOf(t, key)
}

// startLab starts a ClickHouse on ns's loopback, seeds it with dataset
// (named after marker) of rows neuron rows whose type carries marker,
// enrolls name and starts its agent in ns with env on top of the
// federation's settings.
func startLab(t *testing.T, ns netns, name, marker, dataset string, rows int, env map[string]string) *nsLab {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	httpPort, err := devstack.FreePort()
	require.NoError(t, err)
	tcpPort, err := devstack.FreePort()
	require.NoError(t, err)
	flightPort, err := devstack.FreePort()
	require.NoError(t, err)
	ch := &devstack.ClickHouse{Name: "clickhouse-" + name, Dir: filepath.Join(dir, "ch"), HTTPPort: httpPort, TCPPort: tcpPort,
		Netns: ns.name, LogFile: filepath.Join(dir, "ch.log")}
	require.NoError(t, ch.Start(ctx))
	t.Cleanup(func() { _ = ch.Stop(context.Background()) })
	conn, err := devstack.NetnsClickHouse(ctx, ns.name, ch.Addr(), "", "syndb")
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	migs, err := schemas.ClickHouseMigrations()
	require.NoError(t, err)
	_, err = migrate.Apply(ctx, conn, migs, 0)
	require.NoError(t, err)
	require.NoError(t, conn.Exec(ctx, fmt.Sprintf(`INSERT INTO neuron (dataset_id, cid, voxel_volume, neuron_type, terminal_count)
		SELECT toUUID('%s'), generateUUIDv4(), toFloat64(number %% 1000) / 10,
			concat('%s-', toString(number %% 3)), toUInt32(number %% 200)
		FROM numbers(%d)`, dataset, marker, rows)))
	require.NoError(t, conn.Exec(ctx, fmt.Sprintf(`INSERT INTO datasets (dataset_id, name, owner, animal, brain_region,
		genetic_manipulations, microscopy, publication_doi, notes, created_at)
		SELECT toUUID('%s'), '%s %s', 'netns', 'mouse', 'cortex', ['none'], 'SBEM', '', '%s', now()`, dataset, marker, name, marker)))

	st, err := store.Open(ctx, fed.Stack.Postgres.DSN())
	require.NoError(t, err)
	// The agent's ClickHouse and Flight are on its own loopback, which no
	// connection can vouch for: the admin names it at enrolment.
	e, err := st.CreateCluster(ctx, name, time.Hour, "127.0.0.1")
	st.Close()
	require.NoError(t, err)
	all := map[string]string{
		"SYNDB_ENROLLMENT_TOKEN": e.Token, "SYNDB_NODE_NAME": name,
		"SYNDB_P2P_KEY_FILE":    filepath.Join(dir, "node.key"),
		"SYNDB_FLIGHT_ADDR":     fmt.Sprintf("127.0.0.1:%d", flightPort),
		"SYNDB_CLICKHOUSE_ADDR": ch.Addr(), "SYNDB_CLICKHOUSE_DATABASE": "syndb",
		"SYNDB_CLICKHOUSE_GATEWAY_USER": "default", "SYNDB_CLICKHOUSE_GATEWAY_PASSWORD": "",
		"SYNDB_P2P_MDNS": "false",
	}
	maps.Copy(all, env)
	merged := maps.Clone(fed.Env)
	maps.Copy(merged, all)
	list := make([]string, 0, len(merged))
	for k, v := range merged {
		list = append(list, k+"="+v)
	}
	inNetns(t, ns, list, &prefixWriter{t: t, prefix: name + ": "}, syndbBin, "node")
	t.Cleanup(func() {
		status, raw := apiDoCtx(context.Background(), t, http.MethodDelete, "/v1/federation/clusters/"+name, "")
		require.Equal(t, http.StatusOK, status, string(raw))
	})
	return &nsLab{name: name, ns: ns, conn: conn, rows: rows, dataset: dataset}
}

// newNetnsTopology builds the namespaces, relay, worker and labs. The
// relay's namespace links the hub's (root) namespace and the NAT'd lab's
// and forwards nothing: the hub has no route to that lab but the relay.
func newNetnsTopology(t *testing.T, marker string, natRows int, relayMaxData int64) *netnsTopology {
	t.Helper()
	needNetns(t)
	tag := fmt.Sprintf("%04x", os.Getpid()%0xffff)
	root := netns{}
	relayNS := newNetns(t, "sdbf-rly-"+tag)
	natNS, dirNS := newNetns(t, "sdbf-nat-"+tag), newNetns(t, "sdbf-dir-"+tag)
	link(t, root, "sf"+tag+"r0", "10.234.0.1/24", relayNS, "sf"+tag+"r1", "10.234.0.2/24")
	link(t, relayNS, "sf"+tag+"n0", "10.234.1.1/24", natNS, "sf"+tag+"n1", "10.234.1.2/24")
	link(t, root, "sf"+tag+"d0", "10.234.2.1/24", dirNS, "sf"+tag+"d1", "10.234.2.2/24")

	relayPort, err := devstack.FreePort()
	require.NoError(t, err)
	relayID := startRelayIn(t, relayNS, []string{"10.234.0.2", "10.234.1.1"}, relayPort, relayMaxData)
	relayForHub := fmt.Sprintf("/ip4/10.234.0.2/udp/%d/quic-v1/p2p/%s", relayPort, relayID)
	relayForLab := fmt.Sprintf("/ip4/10.234.1.1/udp/%d/quic-v1/p2p/%s", relayPort, relayID)
	hubPort, err := devstack.FreePort()
	require.NoError(t, err)
	restartWorker(t, map[string]string{
		"SYNDB_P2P_RELAYS": relayForHub,
		"SYNDB_P2P_LISTEN": fed.Env["SYNDB_P2P_LISTEN"] +
			fmt.Sprintf(",/ip4/10.234.2.1/udp/%d/quic-v1,/ip4/10.234.2.1/tcp/%d", hubPort, hubPort),
	})
	hubID := fed.Env["SYNDB_HUB_ID"]
	top := &netnsTopology{relayForLab: relayForLab, relayNS: relayNS,
		ifaces: netnsLinks{hubRelay: "sf" + tag + "r0", hubDirect: "sf" + tag + "d0", relayNat: "sf" + tag + "n0"}}
	top.nat = startLab(t, natNS, "nsnat-"+tag, marker, uuid.NewString(), natRows, map[string]string{
		"SYNDB_HUB_ADDR": "", "SYNDB_P2P_BOOTSTRAP": relayForLab, "SYNDB_P2P_RELAYS": relayForLab,
		"SYNDB_P2P_REACHABILITY": "private",
		"SYNDB_P2P_LISTEN":       "/ip4/10.234.1.2/udp/4302/quic-v1,/ip4/10.234.1.2/tcp/4302",
	})
	// The direct lab knows the hub's QUIC and TCP addresses and dials TCP
	// first: its whole data plane then rides TCP with TLS 1.3.
	top.hubPort = hubPort
	top.direct = startLab(t, dirNS, "nsdir-"+tag, marker, uuid.NewString(), 2000, map[string]string{
		"SYNDB_HUB_ADDR":      fmt.Sprintf("/ip4/10.234.2.1/tcp/%d/p2p/%s", hubPort, hubID),
		"SYNDB_P2P_BOOTSTRAP": fmt.Sprintf("/ip4/10.234.2.1/udp/%[1]d/quic-v1/p2p/%[2]s,/ip4/10.234.2.1/tcp/%[1]d/p2p/%[2]s", hubPort, hubID),
		"SYNDB_P2P_LISTEN":    "/ip4/10.234.2.2/udp/4303/quic-v1,/ip4/10.234.2.2/tcp/4303",
		"SYNDB_P2P_PREFER":    "tcp",
	})
	return top
}
