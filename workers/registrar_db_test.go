package workers

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/p2p/p2ptest"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/internal/wire"
)

// recordingRegistry keeps the registrations that reach the store.
type recordingRegistry struct {
	mu   sync.Mutex
	regs []store.Registration
}

func (r *recordingRegistry) Register(_ context.Context, reg store.Registration) (domain.Cluster, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.regs = append(r.regs, reg)
	return domain.Cluster{Name: reg.Name, ClickHouseDatabase: reg.ClickHouseDatabase}, nil
}

func (r *recordingRegistry) registrations() []store.Registration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]store.Registration(nil), r.regs...)
}

// rawRegister sends req to hub's Register handler as a node that skips the
// client-side validation would, and returns the hub's reply.
func rawRegister(t *testing.T, node, hub host.Host, req *wire.RegisterRequest) *wire.Reply {
	t.Helper()
	s, err := node.NewStream(t.Context(), hub.ID(), p2p.Register.ID)
	require.NoError(t, err)
	defer func() { _ = s.Close() }()
	body, err := proto.Marshal(req)
	require.NoError(t, err)
	_, err = s.Write(append(binary.AppendUvarint(nil, uint64(len(body))), body...))
	require.NoError(t, err)
	require.NoError(t, s.CloseWrite())
	r := bufio.NewReader(s)
	size, err := binary.ReadUvarint(r)
	require.NoError(t, err)
	raw := make([]byte, size)
	_, err = io.ReadFull(r, raw)
	require.NoError(t, err)
	var reply wire.Reply
	require.NoError(t, proto.Unmarshal(raw, &reply))
	return &reply
}

// TestRegistrarClickHouseDatabase: the database a node registers reaches the
// registry as sent, an older agent's (none) as "syndb", and a registration
// naming anything but an identifier is refused with the reason before the
// registry sees it.
func TestRegistrarClickHouseDatabase(t *testing.T) {
	t.Parallel()
	hub, node := p2ptest.Host(t, "/ip4/127.0.0.1/tcp/0"), p2ptest.Host(t, "/ip4/127.0.0.1/tcp/0")
	reg := &recordingRegistry{}
	r := &Registrar{store: reg, target: 4, log: slog.New(slog.DiscardHandler), conns: hub.Network().ConnsToPeer}
	p2p.Handle(hub, p2p.Register, slog.New(slog.DiscardHandler), nil, r.Handle)
	require.NoError(t, node.Connect(t.Context(), peer.AddrInfo{ID: hub.ID(), Addrs: hub.Addrs()}))

	for _, tc := range []struct{ sent, stored string }{
		{"syndb_c", "syndb_c"},
		{"", domain.DefaultClickHouseDatabase},
		{"_Lab_B2", "_Lab_B2"},
	} {
		req := &wire.RegisterRequest{Name: "lab-c", ClickhouseAddr: "127.0.0.1:9000", ClickhouseDatabase: tc.sent}
		require.NoError(t, p2p.Call(t.Context(), node, hub.ID(), p2p.Register, req, &wire.RegisterResponse{}), "sent %q", tc.sent)
		regs := reg.registrations()
		require.Equal(t, tc.stored, regs[len(regs)-1].ClickHouseDatabase, "sent %q", tc.sent)
	}
	accepted := len(reg.registrations())
	require.Equal(t, 3, accepted)

	for _, hostile := range []string{"syndb', 'neuron') UNION ALL SELECT * FROM system.users --", "lab_a.neuron",
		"syndb; DROP DATABASE syndb", "9lives", "x\x00"} {
		reply := rawRegister(t, node, hub, &wire.RegisterRequest{Name: "lab-c", ClickhouseAddr: "127.0.0.1:9000",
			ClickhouseDatabase: hostile})
		require.Equal(t, p2p.CodeInvalid, reply.GetError().GetCode(), "database %q", hostile)
		require.Contains(t, reply.GetError().GetMessage(), "clickhouse_database", "database %q", hostile)
		require.Contains(t, reply.GetError().GetMessage(), "must be 1-64 characters of A-Z, a-z, 0-9 and '_'")
	}
	require.Len(t, reg.registrations(), accepted, "no refused registration reaches the registry")
}

// TestRegistrarFlightCert: the Flight certificate pin a node registers
// reaches the registry in lowercase hex, none as "", and a pin that is not
// a SHA-256 is refused before the registry sees it.
func TestRegistrarFlightCert(t *testing.T) {
	t.Parallel()
	hub, node := p2ptest.Host(t, "/ip4/127.0.0.1/tcp/0"), p2ptest.Host(t, "/ip4/127.0.0.1/tcp/0")
	reg := &recordingRegistry{}
	r := &Registrar{store: reg, target: 4, log: slog.New(slog.DiscardHandler), conns: hub.Network().ConnsToPeer}
	p2p.Handle(hub, p2p.Register, slog.New(slog.DiscardHandler), nil, r.Handle)
	require.NoError(t, node.Connect(t.Context(), peer.AddrInfo{ID: hub.ID(), Addrs: hub.Addrs()}))

	pin := sha256.Sum256([]byte("a certificate"))
	for _, tc := range []struct {
		sent   []byte
		stored string
	}{
		{pin[:], fmt.Sprintf("%x", pin)},
		{nil, ""},
	} {
		req := &wire.RegisterRequest{Name: "lab-c", FlightAddr: "127.0.0.1:50052", FlightCertSha256: tc.sent}
		require.NoError(t, p2p.Call(t.Context(), node, hub.ID(), p2p.Register, req, &wire.RegisterResponse{}))
		regs := reg.registrations()
		require.Equal(t, tc.stored, regs[len(regs)-1].FlightCertSHA256)
	}
	reply := rawRegister(t, node, hub, &wire.RegisterRequest{Name: "lab-c", FlightAddr: "127.0.0.1:50052", FlightCertSha256: pin[:16]})
	require.Equal(t, p2p.CodeInvalid, reply.GetError().GetCode())
	require.Contains(t, reply.GetError().GetMessage(), "flight_cert_sha256 is 16 bytes")
	require.Len(t, reg.registrations(), 2, "no refused registration reaches the registry")
}
