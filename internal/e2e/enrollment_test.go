package e2e

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/nodeagent"
)

// startAgent runs a node agent in this process against the federation's hub,
// with its own identity and its own database on lab-a's ClickHouse.
func startAgent(t *testing.T, name, token, keyFile string) *nodeagent.Agent {
	t.Helper()
	if keyFile == "" {
		keyFile = filepath.Join(t.TempDir(), "node.key")
	}
	cfg := config.Node{
		Name: name, Hub: fed.HubAddr, KeyFile: keyFile, EnrollmentToken: token,
		Listen:     []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"},
		FlightAddr: "127.0.0.1:0",
		ClickHouse: config.ClickHouse{Addr: fed.Stack.Nodes["lab-a"].Addr(), User: "default",
			Database: strings.ReplaceAll(name, "-", "_")},
	}
	return runAgent(t, cfg)
}

// runAgent runs a node agent with cfg in this process until the test ends.
func runAgent(t *testing.T, cfg config.Node) *nodeagent.Agent {
	t.Helper()
	require.NoError(t, cfg.Validate())
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := nodeagent.New(cfg, log)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

func enroll(t *testing.T, name string) store.Enrollment {
	t.Helper()
	status, raw := apiDo(t, http.MethodPost, "/v1/federation/clusters", `{"name":"`+name+`"}`)
	require.Equal(t, http.StatusCreated, status, string(raw))
	var e store.Enrollment
	require.NoError(t, json.Unmarshal(raw, &e))
	require.True(t, strings.HasPrefix(e.Token, store.EnrollmentPrefix))
	return e
}

func revoke(t *testing.T, name string) {
	t.Helper()
	status, raw := apiDo(t, http.MethodDelete, "/v1/federation/clusters/"+name, "")
	require.Equal(t, http.StatusOK, status, string(raw))
}

// refusedWith waits until the hub refused a's registration with reason.
func refusedWith(t *testing.T, a *nodeagent.Agent, reason string) {
	t.Helper()
	ok := assert.Eventually(t, func() bool {
		err := a.LastError()
		return err != nil && p2p.IsCode(err, p2p.CodeUnauthorized) && strings.Contains(err.Error(), reason)
	}, 30*time.Second, 50*time.Millisecond)
	require.True(t, ok, "want a refusal saying %q, last error: %v", reason, a.LastError())
}

// shutOut waits until a's registration fails at the transport: the hub's
// gater does not admit it at all.
func shutOut(t *testing.T, a *nodeagent.Agent) {
	t.Helper()
	ok := assert.Eventually(t, func() bool {
		err := a.LastError()
		return err != nil && !p2p.IsCode(err, p2p.CodeUnauthorized)
	}, 30*time.Second, 50*time.Millisecond)
	require.True(t, ok, "want a transport refusal, last error: %v", a.LastError())
}

func registered(t *testing.T, a *nodeagent.Agent) {
	t.Helper()
	select {
	case <-a.Registered():
	case <-time.After(30 * time.Second):
		t.Fatalf("node did not register: %v", a.LastError())
	}
}

func TestEnrollment(t *testing.T) {
	st, err := store.Open(t.Context(), fed.Env["SYNDB_POSTGRES_DSN"])
	require.NoError(t, err)
	t.Cleanup(st.Close)
	t.Cleanup(func() {
		for _, n := range []string{"lab-c", "lab-d", "lab-f"} {
			_, _ = st.RevokeCluster(context.Background(), n)
		}
	})
	peerOf := func(name string) string {
		c, err := st.Cluster(t.Context(), name)
		require.NoError(t, err)
		return c.PeerID
	}

	// A node with a valid token registers, and its name binds to its peer.
	c := enroll(t, "lab-c")
	keyC := filepath.Join(t.TempDir(), "lab-c.key")
	agentC := startAgent(t, "lab-c", c.Token, keyC)
	registered(t, agentC)
	require.Equal(t, agentC.PeerID().String(), peerOf("lab-c"))

	// With no enrollment open, an unknown peer is not even admitted.
	never := startAgent(t, "lab-never", "", "")
	shutOut(t, never)
	select {
	case <-never.Registered():
		t.Fatal("a node that was never enrolled registered")
	default:
	}

	// While one is open (lab-d's), unknown peers get in to present a token,
	// and a name never enrolled is refused (like any name without a valid
	// token: the refusal does not say whether the name exists).
	enroll(t, "lab-d")
	refusedWith(t, startAgent(t, "lab-never", "", ""), "no valid enrollment")

	// A wrong token is refused and binds nothing.
	refusedWith(t, startAgent(t, "lab-d", store.EnrollmentPrefix+"wrong", ""), "no valid enrollment")
	require.Empty(t, peerOf("lab-d"))

	// Another cluster's token is refused too.
	refusedWith(t, startAgent(t, "lab-d", c.Token, ""), "no valid enrollment")
	require.Empty(t, peerOf("lab-d"))

	// An expired token is refused.
	_, err = st.CreateCluster(t.Context(), "lab-f", -time.Minute, "")
	require.NoError(t, err)
	f, err := st.CreateCluster(t.Context(), "lab-f", -time.Minute, "")
	require.NoError(t, err)
	refusedWith(t, startAgent(t, "lab-f", f.Token, ""), "expired")
	require.Empty(t, peerOf("lab-f"))

	// A known name from another peer is refused; the binding stays.
	refusedWith(t, startAgent(t, "lab-c", c.Token, ""), "already been used")
	require.Equal(t, agentC.PeerID().String(), peerOf("lab-c"))

	// Revocation: the node's connections are closed and it is refused.
	revoke(t, "lab-c")
	start := time.Now()
	shutOut(t, agentC)
	t.Logf("revoked node cut off after %s", time.Since(start))
	hc, err := st.Cluster(t.Context(), "lab-c")
	require.NoError(t, err)
	require.Equal(t, "revoked", hc.Status)

	// Re-enrolled, the old (used) token is refused while the new one works
	// for a node with a new identity.
	c2 := enroll(t, "lab-c")
	refusedWith(t, startAgent(t, "lab-c", c.Token, ""), "already been used")
	agentC2 := startAgent(t, "lab-c", c2.Token, "")
	registered(t, agentC2)
	require.Equal(t, agentC2.PeerID().String(), peerOf("lab-c"))
}
