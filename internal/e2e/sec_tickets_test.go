package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/seed"
	"github.com/syndb/federation/internal/wire"
	"github.com/syndb/federation/nodeagent"
	"github.com/syndb/federation/schemas"
)

// wiretap is a Flight server between the hub and a node that passes every
// DoGet and DoPut on and keeps a copy of each ticket: what anyone who can
// read the plain gRPC connection sees.
type wiretap struct {
	flight.BaseFlightServer
	up flight.Client

	mu   sync.Mutex
	gets [][]byte // DoGet tickets
	puts [][]byte // DoPut descriptor commands
}

func (w *wiretap) DoGet(tkt *flight.Ticket, stream flight.FlightService_DoGetServer) error {
	w.mu.Lock()
	w.gets = append(w.gets, tkt.GetTicket())
	w.mu.Unlock()
	up, err := w.up.DoGet(stream.Context(), tkt)
	if err != nil {
		return err
	}
	for {
		fd, err := up.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(fd); err != nil {
			return err
		}
	}
}

func (w *wiretap) DoPut(stream flight.FlightService_DoPutServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.puts = append(w.puts, first.GetFlightDescriptor().GetCmd())
	w.mu.Unlock()
	up, err := w.up.DoPut(stream.Context())
	if err != nil {
		return err
	}
	if err := up.Send(first); err != nil {
		return err
	}
	go func() {
		for {
			fd, err := stream.Recv()
			if err != nil {
				_ = up.CloseSend()
				return
			}
			if up.Send(fd) != nil {
				return
			}
		}
	}()
	for {
		res, err := up.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(res); err != nil {
			return err
		}
	}
}

// captured returns the tickets the tap saw, decoded, with their bytes.
func (w *wiretap) captured(t *testing.T, puts bool) map[*wire.FlightTicket][]byte {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	raw := w.gets
	if puts {
		raw = w.puts
	}
	out := map[*wire.FlightTicket][]byte{}
	for _, b := range raw {
		var st wire.SignedTicket
		require.NoError(t, proto.Unmarshal(b, &st))
		var tk wire.FlightTicket
		require.NoError(t, proto.Unmarshal(st.GetTicket(), &tk))
		out[&tk] = b
	}
	return out
}

// startWiretap serves a wiretap in front of the Flight server at upstream.
func startWiretap(t *testing.T, upstream string) (*wiretap, string) {
	t.Helper()
	up, err := flight.NewClientWithMiddleware(upstream, nil, nil, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = up.Close() })
	w := &wiretap{up: up}
	srv := grpc.NewServer()
	flight.RegisterFlightServiceServer(srv, w)
	lis, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return w, lis.Addr().String()
}

// TestSecTicketReplay (issue 11, finding 4): the tickets the hub's worker
// uses for an ETL job, captured off the plain gRPC connection to the node,
// are good for nothing afterwards. A replayed write ticket loads no row; a
// replayed read ticket reads none. The write ticket allowed exactly the
// rows the hub validated.
func TestSecTicketReplay(t *testing.T) {
	routableNodes(t)
	const name, db = "lab-tkt", "lab_tkt"
	chCfg := config.ClickHouse{Addr: fed.Stack.Nodes["lab-a"].Addr(), User: "default", Database: db}
	conn, err := clickhouse.Open(t.Context(), chCfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.Exec(t.Context(), "DROP DATABASE IF EXISTS "+db))
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	// The node's warehouse, at the seed's schema, as lab-a's and lab-b's.
	conn, err = clickhouse.Open(t.Context(), chCfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	migs, err := schemas.ClickHouseMigrations()
	require.NoError(t, err)
	_, err = seed.Seed(t.Context(), conn, migs, seed.Options{Node: name, Datasets: 1, Rows: 10})
	require.NoError(t, err)

	// A node whose registered Flight address is the tap.
	port, err := devstack.FreePort()
	require.NoError(t, err)
	flightAddr := fmt.Sprintf("127.0.0.1:%d", port)
	tap, tapAddr := startWiretap(t, flightAddr)
	e := enroll(t, name)
	t.Cleanup(func() {
		_, _ = apiDoCtx(context.Background(), t, http.MethodDelete, "/v1/federation/clusters/"+name, "")
	})
	cfg := config.Node{
		Name: name, Hub: fed.HubAddr, KeyFile: filepath.Join(t.TempDir(), "node.key"), EnrollmentToken: e.Token,
		Listen:     []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"},
		FlightAddr: flightAddr, FlightPublicAddr: tapAddr, ClickHouse: chCfg, DataPlane: config.DataPlaneDirect,
	}
	agent := runAgent(t, cfg)
	registered(t, agent)
	waitHealth(t, name, health.Healthy, 2*time.Minute)

	// An ETL job of 25 neurons into the node, through the tap.
	const rows = 25
	dataset := uuid.New()
	var csv strings.Builder
	csv.WriteString("cid,voxel_volume,neuron_type,terminal_count\n")
	for i := range rows {
		fmt.Fprintf(&csv, "%s,%d,pyramidal,%d\n", uuid.New(), i, i%5)
	}
	obj := upload(t, "tickets.csv", []byte(csv.String()))
	spec := fmt.Sprintf(`{"object": %q, "table": "neuron", "node": %q, "dataset": {"dataset_id": %q, "name": "tickets"}}`,
		obj, name, dataset)
	code, raw := apiDo(t, http.MethodPost, "/v1/jobs", `{"kind": "etl", "spec": `+spec+`}`)
	require.Equal(t, http.StatusAccepted, code, string(raw))
	var started api.JobStarted
	require.NoError(t, json.Unmarshal(raw, &started))
	js := waitJob(t, started.JobID, 2*time.Minute)
	require.Equal(t, domain.JobCompleted, js.State, "%s %s", js.Error, js.Result)
	countRows := func() uint64 {
		var n uint64
		require.NoError(t, conn.QueryRow(t.Context(), "SELECT count() FROM neuron WHERE dataset_id = toUUID('"+dataset.String()+"')").Scan(&n))
		return n
	}
	require.Equal(t, uint64(rows), countRows())

	// The hub's write ticket for the neurons: bound to the hub's address,
	// short-lived, for exactly the rows it validated.
	var write []byte
	for tk, b := range tap.captured(t, true) {
		if tk.GetQuery().GetTable() != "neuron" {
			continue
		}
		write = b
		require.Equal(t, uint64(rows), tk.GetQuery().GetLimit(), "the ticket allows the validated rows")
		require.Equal(t, []string{"127.0.0.1"}, tk.GetHolderIps())
		require.WithinDuration(t, time.Now(), tk.GetExpiresAt().AsTime(), 2*time.Minute)
		require.LessOrEqual(t, time.Until(tk.GetExpiresAt().AsTime()), nodeagent.DefaultTicketTTL)
	}
	require.NotNil(t, write, "the tap saw the load")
	reads := tap.captured(t, false)
	require.NotEmpty(t, reads, "the tap saw the hub's reads")

	// Replayed straight to the node, inside the ticket's lifetime.
	c, err := flight.NewClientWithMiddleware(flightAddr, nil, nil, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "cid", Type: extensions.NewUUIDType()}, {Name: "dataset_id", Type: extensions.NewUUIDType()},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	b.Field(0).(*extensions.UUIDBuilder).Append(uuid.New())
	b.Field(1).(*extensions.UUIDBuilder).Append(dataset)
	rec := b.NewRecordBatch()
	defer rec.Release()
	put, err := c.DoPut(t.Context())
	require.NoError(t, err)
	w := flight.NewRecordWriter(put, ipc.WithSchema(schema))
	w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: write})
	_ = w.Write(rec)
	_ = w.Close()
	_ = put.CloseSend()
	_, err = put.Recv()
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "ticket already used")
	require.Equal(t, uint64(rows), countRows(), "the replay loaded nothing")

	for _, tkt := range reads {
		get, err := c.DoGet(t.Context(), &flight.Ticket{Ticket: tkt})
		if err == nil {
			_, err = get.Recv()
		}
		require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
		require.ErrorContains(t, err, "ticket already used")
	}
}
