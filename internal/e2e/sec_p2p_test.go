package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/p2p/p2ptest"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/internal/wire"
)

// hubInfo is the hub's libp2p identity and address, from the federation.
func hubInfo(t *testing.T) peer.AddrInfo {
	t.Helper()
	infos, err := p2p.ParseAddrInfos([]string{fed.HubAddr})
	require.NoError(t, err)
	return infos[0]
}

// register sends a Register from h to the hub, as a node would, and
// returns the hub's answer. While the hub's gater does not admit h yet (an
// enrolment it has not heard of), it tries again.
func register(t *testing.T, h host.Host, req *wire.RegisterRequest) error {
	t.Helper()
	hub := hubInfo(t)
	h.Peerstore().AddAddrs(hub.ID, hub.Addrs, time.Hour)
	if len(req.GetAddrs()) == 0 {
		for _, a := range h.Addrs() {
			req.Addrs = append(req.Addrs, a.String())
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		err := p2p.Call(ctx, h, hub.ID, p2p.Register, req, &wire.RegisterResponse{})
		if !errors.Is(err, p2p.ErrUnreachable) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// admitted connects h to the hub, waiting for the hub to open its gater.
func admitted(t *testing.T, h host.Host) {
	t.Helper()
	hub := hubInfo(t)
	require.Eventually(t, func() bool { return h.Connect(t.Context(), hub) == nil }, 15*time.Second, 100*time.Millisecond,
		"the hub does not admit strangers while an enrolment is open")
}

// pgStore opens the hub's registry, closed at cleanup.
func pgStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), fed.Env["SYNDB_POSTGRES_DSN"])
	require.NoError(t, err)
	t.Cleanup(st.Close)
	return st
}

// revokeAtCleanup revokes names through the registry when the test ends.
func revokeAtCleanup(t *testing.T, st *store.Store, names ...string) {
	t.Cleanup(func() {
		for _, n := range names {
			_, _ = st.RevokeCluster(context.Background(), n)
		}
	})
}

// tokenUnused reads, by hand, whether name still has an unused enrolment token.
func tokenUnused(t *testing.T, name string) bool {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), fed.Env["SYNDB_POSTGRES_DSN"])
	require.NoError(t, err)
	defer func() { _ = conn.Close(context.Background()) }()
	var n int
	require.NoError(t, conn.QueryRow(t.Context(),
		`SELECT count(*) FROM enrollment_tokens WHERE cluster = $1 AND used_at IS NULL`, name).Scan(&n))
	return n > 0
}

// TestSecDataAddrsOnConnectionHost: a node may register data addresses
// (ClickHouse, Flight) only on the host its libp2p connection comes from
// (here 127.0.0.1) or on the host an admin set at enrolment; anything else
// is refused with the reason and changes nothing in the registry.
func TestSecDataAddrsOnConnectionHost(t *testing.T) {
	st := pgStore(t)
	revokeAtCleanup(t, st, "lab-sec-addr", "lab-sec-host")
	e := enroll(t, "lab-sec-addr")
	node := p2ptest.Host(t)

	// Elsewhere than the connection's host: refused, token still unused,
	// nothing bound.
	for _, tc := range []struct{ ch, flight, want string }{
		{"192.0.2.10:19000", "127.0.0.1:50099", "clickhouse_addr 192.0.2.10:19000 is not on the host this connection comes from (127.0.0.1)"},
		{"127.0.0.1:19000", "evil.example:50052", "flight_addr evil.example:50052"},
		{"[::1]:19000", "", "clickhouse_addr [::1]:19000"},
	} {
		err := register(t, node, &wire.RegisterRequest{Name: "lab-sec-addr", ClickhouseAddr: tc.ch, FlightAddr: tc.flight, EnrollmentToken: e.Token})
		require.Error(t, err, "clickhouse %s flight %s", tc.ch, tc.flight)
		assert.True(t, p2p.IsCode(err, p2p.CodeInvalid), "%v", err)
		assert.Contains(t, err.Error(), tc.want)
	}
	c, err := st.Cluster(t.Context(), "lab-sec-addr")
	require.NoError(t, err)
	require.Empty(t, c.PeerID, "a refused registration binds nothing")
	require.Empty(t, c.ClickHouseAddr)
	require.True(t, tokenUnused(t, "lab-sec-addr"), "a refused registration does not use the token")

	// On the connection's host: accepted.
	require.NoError(t, register(t, node, &wire.RegisterRequest{Name: "lab-sec-addr", ClickhouseAddr: "127.0.0.1:19000",
		FlightAddr: "127.0.0.1:50099", EnrollmentToken: e.Token}))
	// A later registration moving the warehouse off the host is refused,
	// and the registry keeps the address it had (oracle: the API's list).
	err = register(t, node, &wire.RegisterRequest{Name: "lab-sec-addr", ClickhouseAddr: "192.0.2.10:9000", FlightAddr: "127.0.0.1:50099"})
	require.True(t, p2p.IsCode(err, p2p.CodeInvalid), "%v", err)
	requireListedAddr(t, "lab-sec-addr", "127.0.0.1:19000")

	// An admin-set data host admits addresses on that host, and only there.
	status, raw := apiDo(t, http.MethodPost, "/v1/federation/clusters", `{"name":"lab-sec-host","data_host":"192.0.2.10"}`)
	require.Equal(t, http.StatusCreated, status, string(raw))
	var eh store.Enrollment
	require.NoError(t, json.Unmarshal(raw, &eh))
	other := p2ptest.Host(t)
	err = register(t, other, &wire.RegisterRequest{Name: "lab-sec-host", ClickhouseAddr: "192.0.2.11:9000", EnrollmentToken: eh.Token})
	require.True(t, p2p.IsCode(err, p2p.CodeInvalid), "%v", err)
	assert.Contains(t, err.Error(), "192.0.2.10", "the refusal names the host set at enrolment")
	require.NoError(t, register(t, other, &wire.RegisterRequest{Name: "lab-sec-host", ClickhouseAddr: "192.0.2.10:9000",
		FlightAddr: "127.0.0.1:50098", EnrollmentToken: eh.Token}))
	requireListedAddr(t, "lab-sec-host", "192.0.2.10:9000")

	// A bad data host is the admin's mistake: 400.
	status, raw = apiDo(t, http.MethodPost, "/v1/federation/clusters", `{"name":"lab-sec-bad","data_host":"10.0.0.1:9000"}`)
	require.Equal(t, http.StatusBadRequest, status, string(raw))
}

// requireListedAddr waits for the API's registry snapshot (refreshed
// after a registration, not with it) to list name at addr.
func requireListedAddr(t *testing.T, name, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, pollUntil(ctx, func() error {
		if got := listedCluster(t, name).ClickHouseAddr; got != addr {
			return fmt.Errorf("%s listed at %q, want %q", name, got, addr)
		}
		return nil
	}))
}

// listedCluster returns name from GET /v1/federation/clusters.
func listedCluster(t *testing.T, name string) domain.Cluster {
	t.Helper()
	status, raw := apiDo(t, http.MethodGet, "/v1/federation/clusters", "")
	require.Equal(t, http.StatusOK, status, string(raw))
	var body struct {
		Clusters []domain.Cluster `json:"clusters"`
	}
	require.NoError(t, json.Unmarshal(raw, &body), string(raw))
	for _, c := range body.Clusters {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no cluster %q in %s", name, raw)
	return domain.Cluster{}
}

// kadFindNode asks the hub's DHT for the peers closest to its own ID.
func kadFindNode(ctx context.Context, h host.Host, hub peer.ID) error {
	s, err := h.NewStream(ctx, hub, p2p.DHTPrefix+"/kad/1.0.0")
	if err != nil {
		return err
	}
	defer func() { _ = s.Reset() }()
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	body, err := proto.Marshal(&dhtpb.Message{Type: dhtpb.Message_FIND_NODE, Key: []byte(hub)})
	if err != nil {
		return err
	}
	if _, err := s.Write(append(binary.AppendUvarint(nil, uint64(len(body))), body...)); err != nil {
		return err
	}
	r := bufio.NewReader(s)
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return err
	}
	_, err = io.CopyN(io.Discard, r, int64(n))
	return err
}

// waitDisconnected waits until h has no connection to p.
func waitDisconnected(t *testing.T, h host.Host, p peer.ID, why string) {
	t.Helper()
	require.Eventually(t, func() bool { return h.Network().Connectedness(p) != network.Connected },
		10*time.Second, 20*time.Millisecond, why)
}

// TestSecStrangers: while an enrolment token is open, a peer the hub does
// not know gets in only to Register: the DHT and ping refuse it and close
// its connection, a refused Register closes its connection, hammering
// Register is rate-limited, and no refusal names another peer or cluster.
func TestSecStrangers(t *testing.T) {
	st := pgStore(t)
	revokeAtCleanup(t, st, "lab-sec-open", "lab-sec-gone")
	hub := hubInfo(t)
	ctx := t.Context()

	// A revoked name, bound to a peer, and an open enrolment.
	gone := enroll(t, "lab-sec-gone")
	goneNode := p2ptest.Host(t)
	require.NoError(t, register(t, goneNode, &wire.RegisterRequest{Name: "lab-sec-gone", EnrollmentToken: gone.Token}))
	revoke(t, "lab-sec-gone")
	open := enroll(t, "lab-sec-open")

	// The DHT does not answer a stranger, and the connection is closed.
	stranger := p2ptest.Host(t)
	admitted(t, stranger)
	err := kadFindNode(ctx, stranger, hub.ID)
	require.Error(t, err, "the hub's DHT answered a stranger")
	t.Logf("DHT refused: %v", err)
	waitDisconnected(t, stranger, hub.ID, "the connection stays open after a refused DHT stream")

	// Neither does ping.
	pinger := p2ptest.Host(t)
	admitted(t, pinger)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	res := <-ping.Ping(pctx, pinger, hub.ID)
	cancel()
	require.Error(t, res.Error, "the hub answered a stranger's ping")
	waitDisconnected(t, pinger, hub.ID, "the connection stays open after a refused ping")

	// Refusals: the asking node learns nothing of other peers or names.
	var secrets []string
	for _, name := range []string{"lab-a", "lab-b", "lab-sec-gone"} {
		c, err := st.Cluster(ctx, name)
		require.NoError(t, err)
		require.NotEmpty(t, c.PeerID)
		secrets = append(secrets, c.PeerID)
	}
	secrets = append(secrets, "lab-a", "lab-b", "lab-sec-gone", "lab-sec-open", goneNode.ID().String())
	asker := p2ptest.Host(t)
	for _, tc := range []struct {
		what string
		req  *wire.RegisterRequest
	}{
		{"wrong token for a pending name", &wire.RegisterRequest{Name: "lab-sec-open", EnrollmentToken: store.EnrollmentPrefix + "wrong"}},
		{"no token for a pending name", &wire.RegisterRequest{Name: "lab-sec-open"}},
		{"a revoked name", &wire.RegisterRequest{Name: "lab-sec-gone", EnrollmentToken: gone.Token}},
		{"a taken name", &wire.RegisterRequest{Name: "lab-a"}},
		{"a taken name with another's token", &wire.RegisterRequest{Name: "lab-a", EnrollmentToken: open.Token}},
		{"a name never enrolled", &wire.RegisterRequest{Name: "lab-sec-never"}},
	} {
		err := register(t, asker, tc.req)
		require.Error(t, err, tc.what)
		t.Logf("%s: %v", tc.what, err)
		assert.True(t, p2p.IsCode(err, p2p.CodeUnauthorized), "%s: %v", tc.what, err)
		for _, s := range secrets {
			assert.NotContains(t, err.Error(), s, "%s: the refusal names %s", tc.what, s)
		}
		waitDisconnected(t, asker, hub.ID, "the connection stays open after a refused Register")
	}
	c, err := st.Cluster(ctx, "lab-sec-open")
	require.NoError(t, err)
	require.Empty(t, c.PeerID, "no refusal bound the pending name")

	// A stranger hammering Register is cut short.
	hammer := p2ptest.Host(t)
	limited := 0
	for range 20 {
		err := register(t, hammer, &wire.RegisterRequest{Name: "lab-sec-open", EnrollmentToken: store.EnrollmentPrefix + "guess"})
		require.Error(t, err)
		if p2p.IsCode(err, p2p.CodeUnavailable) && strings.Contains(err.Error(), "too many") {
			limited++
		}
	}
	t.Logf("%d of 20 rapid registrations were rate-limited", limited)
	require.GreaterOrEqual(t, limited, 10)

	// A stranger with the valid token still registers, and is then a node:
	// the DHT answers it.
	node := p2ptest.Host(t)
	require.NoError(t, register(t, node, &wire.RegisterRequest{Name: "lab-sec-open", EnrollmentToken: open.Token}))
	require.NoError(t, kadFindNode(ctx, node, hub.ID), "an enrolled node uses the DHT")
	c, err = st.Cluster(ctx, "lab-sec-open")
	require.NoError(t, err)
	require.Equal(t, node.ID().String(), c.PeerID)
}
