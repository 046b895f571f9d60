package e2e

import (
	"context"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/p2p/p2ptest"
	"github.com/syndb/federation/internal/seed"
	"github.com/syndb/federation/internal/wire"
	"github.com/syndb/federation/nodeagent"
	"github.com/syndb/federation/schemas"
)

// TestMessageSet runs each message of the protocol between an in-process
// hub host and a real node agent on a seeded database of lab-a's
// ClickHouse, checking answers against the warehouse itself.
func TestMessageSet(t *testing.T) {
	ctx := t.Context()
	migs, err := schemas.ClickHouseMigrations()
	require.NoError(t, err)

	// A fresh, seeded warehouse at the seed's schema version.
	chCfg := config.ClickHouse{Addr: fed.Stack.Nodes["lab-a"].Addr(), User: "default", Database: "msgset"}
	conn, err := clickhouse.Open(ctx, chCfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.Exec(ctx, "DROP DATABASE IF EXISTS msgset"))
	conn, err = clickhouse.Open(ctx, chCfg)
	require.NoError(t, err)
	_, err = seed.Seed(ctx, conn, migs, seed.Options{Node: "lab-m", Datasets: 2, Rows: 200})
	require.NoError(t, err)

	// The hub: a host that accepts the node's registration.
	hub := p2ptest.Host(t)
	p2p.Handle(hub, p2p.Register, slog.New(slog.DiscardHandler), nil,
		func(_ context.Context, _ peer.ID, req *wire.RegisterRequest) (*wire.RegisterResponse, error) {
			return &wire.RegisterResponse{Name: req.GetName(), TargetSchema: int32(len(migs))}, nil
		})
	cfg := config.Node{
		Name: "lab-m", Hub: hub.Addrs()[0].String() + "/p2p/" + hub.ID().String(),
		KeyFile: filepath.Join(t.TempDir(), "node.key"), Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"},
		FlightAddr: "127.0.0.1:0", ClickHouse: chCfg, DataPlane: config.DataPlaneDirect,
	}
	agent := runAgent(t, cfg)
	registered(t, agent)
	node := agent.PeerID()
	call := func(spec p2p.Spec, req, resp proto.Message) error { return p2p.Call(ctx, hub, node, spec, req, resp) }

	t.Run("HealthPing", func(t *testing.T) {
		var resp wire.HealthPingResponse
		require.NoError(t, call(p2p.HealthPing, &wire.HealthPingRequest{Nonce: 7}, &resp))
		assert.Equal(t, uint64(7), resp.GetNonce())
		assert.Equal(t, "lab-m", resp.GetName())
		assert.True(t, resp.GetClickhouseOk())
		assert.Equal(t, int32(seed.SchemaVersion), resp.GetSchemaVersion())
		assert.Positive(t, resp.GetClickhouseLatency().AsDuration())
	})

	t.Run("SchemaSync", func(t *testing.T) {
		req := &wire.SchemaSyncRequest{Target: int32(len(migs)), Migrations: wire.FromMigrations(migs)}
		var resp wire.SchemaSyncResponse
		require.NoError(t, call(p2p.SchemaSync, req, &resp))
		assert.Equal(t, int32(seed.SchemaVersion), resp.GetFrom())
		assert.Equal(t, int32(len(migs)), resp.GetTo())
		assert.Len(t, resp.GetApplied(), len(migs)-seed.SchemaVersion)
		assert.Len(t, resp.GetLedger(), len(migs))
		// Again: nothing applied twice.
		require.NoError(t, call(p2p.SchemaSync, req, &resp))
		assert.Empty(t, resp.GetApplied())
	})

	t.Run("DatasetCatalog", func(t *testing.T) {
		var resp wire.DatasetCatalogResponse
		require.NoError(t, call(p2p.DatasetCatalog, &wire.DatasetCatalogRequest{WithRowCounts: true}, &resp))
		require.Len(t, resp.GetDatasets(), 2)
		assert.Equal(t, "lab-m", resp.GetNode())
		for _, d := range resp.GetDatasets() {
			assert.NotEmpty(t, d.GetAnimal())
			assert.NotEmpty(t, d.GetMicroscopy())
			require.Len(t, d.GetTables(), len(seed.Compartments))
			for _, tr := range d.GetTables() {
				var want uint64
				require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM "+tr.GetTable()+
					" WHERE dataset_id = toUUID('"+d.GetDatasetId()+"')").Scan(&want))
				assert.Equal(t, want, tr.GetRows(), tr.GetTable())
			}
		}
		one := seed.DatasetID("lab-m", 1).String()
		require.NoError(t, call(p2p.DatasetCatalog, &wire.DatasetCatalogRequest{DatasetIds: []string{one}}, &resp))
		require.Len(t, resp.GetDatasets(), 1)
		assert.Equal(t, one, resp.GetDatasets()[0].GetDatasetId())
		assert.Empty(t, resp.GetDatasets()[0].GetTables())
	})

	t.Run("GetFlightEndpoint", func(t *testing.T) {
		var resp wire.GetFlightEndpointResponse
		req := &wire.GetFlightEndpointRequest{Query: &wire.FlightQuery{Table: "neuron", Columns: []string{"cid", "mesh_volume"}},
			Ttl: durationpb.New(time.Minute)}
		require.NoError(t, call(p2p.FlightEndpoint, req, &resp))
		require.True(t, strings.HasPrefix(resp.GetLocation(), "grpc://127.0.0.1:"), resp.GetLocation())
		assert.Equal(t, []string{"cid", "mesh_volume"}, resp.GetColumns())
		pub, err := node.ExtractPublicKey()
		require.NoError(t, err)
		tk, err := nodeagent.VerifyTicket(pub, "lab-m", resp.GetTicket(), time.Now())
		require.NoError(t, err)
		assert.Equal(t, hub.ID().String(), tk.GetHolder())
		assert.Equal(t, "neuron", tk.GetQuery().GetTable())
		// Expired, tampered, or issued by another node: refused.
		_, err = nodeagent.VerifyTicket(pub, "lab-m", resp.GetTicket(), time.Now().Add(2*time.Minute))
		assert.ErrorIs(t, err, nodeagent.ErrTicket)
		bad := append([]byte(nil), resp.GetTicket()...)
		bad[len(bad)/2] ^= 0x01
		_, err = nodeagent.VerifyTicket(pub, "lab-m", bad, time.Now())
		assert.ErrorIs(t, err, nodeagent.ErrTicket)
		_, err = nodeagent.VerifyTicket(pub, "lab-x", resp.GetTicket(), time.Now())
		assert.ErrorIs(t, err, nodeagent.ErrTicket)
		// The ticket reads the rows over the node's Flight server.
		fc, err := flight.NewClientWithMiddleware(strings.TrimPrefix(resp.GetLocation(), "grpc://"), nil, nil,
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		defer func() { _ = fc.Close() }()
		stream, err := fc.DoGet(ctx, &flight.Ticket{Ticket: resp.GetTicket()})
		require.NoError(t, err)
		rd, err := flight.NewRecordReader(stream)
		require.NoError(t, err)
		var got int64
		var volume float64
		for rd.Next() {
			rec := rd.RecordBatch()
			got += rec.NumRows()
			vols := rec.Column(1).(*array.Float64)
			for i := range vols.Len() {
				if vols.IsValid(i) {
					volume += vols.Value(i)
				}
			}
		}
		require.NoError(t, rd.Err())
		rd.Release()
		var want uint64
		var wantVolume float64
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(), sum(mesh_volume) FROM neuron").Scan(&want, &wantVolume))
		assert.Equal(t, int64(want), got, "the Flight stream holds every row")
		assert.InDelta(t, wantVolume, volume, 1e-6*math.Max(1, wantVolume))
		// A read ticket does not load.
		put, err := fc.DoPut(ctx)
		require.NoError(t, err)
		require.NoError(t, put.Send(&flight.FlightData{FlightDescriptor: &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: resp.GetTicket()}}))
		_, err = put.Recv()
		assert.Equal(t, codes.Unauthenticated, status.Code(err))

		// All columns when none are named.
		require.NoError(t, call(p2p.FlightEndpoint, &wire.GetFlightEndpointRequest{Query: &wire.FlightQuery{Table: "datasets"}}, &resp))
		assert.Contains(t, resp.GetColumns(), "microscopy")

		err = call(p2p.FlightEndpoint, &wire.GetFlightEndpointRequest{Query: &wire.FlightQuery{Table: "nope"}}, &resp)
		assert.True(t, p2p.IsCode(err, p2p.CodeNotFound), "%v", err)
		err = call(p2p.FlightEndpoint, &wire.GetFlightEndpointRequest{Query: &wire.FlightQuery{Table: "neuron", Columns: []string{"nope"}}}, &resp)
		assert.True(t, p2p.IsCode(err, p2p.CodeInvalid), "%v", err)
	})

	t.Run("AnalyticsQuery", func(t *testing.T) {
		var resp wire.AnalyticsQueryResponse
		req := &wire.AnalyticsQueryRequest{JobId: "j1", Kind: wire.KindSummary, Table: "neuron", Column: "mesh_volume", Quantiles: []float64{0.5}}
		require.NoError(t, call(p2p.AnalyticsQuery, req, &resp))
		require.Len(t, resp.GetSummaries(), 2)
		for _, s := range resp.GetSummaries() {
			var (
				n        uint64
				mean, sd float64
			)
			require.NoError(t, conn.QueryRow(ctx, "SELECT count(mesh_volume), avg(assumeNotNull(mesh_volume)), stddevPop(assumeNotNull(mesh_volume)) FROM neuron"+
				" WHERE dataset_id = toUUID('"+s.GetDatasetId()+"') AND isNotNull(mesh_volume)").Scan(&n, &mean, &sd))
			assert.Equal(t, n, s.GetCount())
			assert.InDelta(t, mean, s.GetMean(), 1e-9*math.Max(1, math.Abs(mean)))
			assert.InDelta(t, sd, s.GetStddev(), 1e-6*math.Max(1, sd))
			assert.InDelta(t, s.GetMean(), s.GetSum()/float64(s.GetCount()), 1e-6*math.Max(1, math.Abs(mean)))
			require.Len(t, s.GetQuantiles(), 1)
			assert.True(t, s.GetMin() <= s.GetQuantiles()[0] && s.GetQuantiles()[0] <= s.GetMax())
		}
		err := call(p2p.AnalyticsQuery, &wire.AnalyticsQueryRequest{Kind: wire.KindSummary, Table: "neuron", Column: "nope"}, &resp)
		assert.True(t, p2p.IsCode(err, p2p.CodeInvalid), "%v", err)
		err = call(p2p.AnalyticsQuery, &wire.AnalyticsQueryRequest{Kind: wire.KindSummary, Table: "datasets", Column: "owner"}, &resp)
		assert.True(t, p2p.IsCode(err, p2p.CodeInvalid), "%v", err)
	})

	t.Run("OntologySync", func(t *testing.T) {
		terms := []*wire.OntologyTerm{
			{Kind: "neurotransmitter", Id: "glutamate", Label: "Glutamate"},
			{Kind: "neurotransmitter", Id: "gaba", Label: "GABA", Synonyms: []string{"γ-aminobutyric acid"}},
			{Kind: "compartment", Id: "neuron", Label: "Neuron"},
			{Kind: "compartment", Id: "axon", Label: "Axon", ParentId: "neuron"},
		}
		req := &wire.OntologySyncRequest{Version: 1, Checksum: wire.OntologyChecksum(terms), Terms: terms}
		var resp wire.OntologySyncResponse
		require.NoError(t, call(p2p.OntologySync, req, &resp))
		assert.Equal(t, int32(0), resp.GetFrom())
		assert.Equal(t, int32(1), resp.GetTo())
		assert.Equal(t, uint32(len(terms)), resp.GetTermsWritten())
		require.NoError(t, call(p2p.OntologySync, req, &resp))
		assert.Equal(t, uint32(0), resp.GetTermsWritten(), "a repeated sync writes nothing")
		var n uint64
		require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM ontology_terms WHERE version = 1").Scan(&n))
		assert.Equal(t, uint64(len(terms)), n, "each term exactly once")

		// The same version with other content is drift.
		changed := append([]*wire.OntologyTerm{{Kind: "brain_region", Id: "ca1", Label: "CA1"}}, terms...)
		err := call(p2p.OntologySync, &wire.OntologySyncRequest{Version: 1, Checksum: wire.OntologyChecksum(changed), Terms: changed}, &resp)
		assert.True(t, p2p.IsCode(err, p2p.CodeDrift), "%v", err)
	})

	t.Run("RefusesStrangers", func(t *testing.T) {
		stranger := p2ptest.Host(t)
		require.NoError(t, stranger.Connect(ctx, peer.AddrInfo{ID: node, Addrs: hub.Peerstore().Addrs(node)}))
		err := p2p.Call(ctx, stranger, node, p2p.HealthPing, &wire.HealthPingRequest{}, &wire.HealthPingResponse{})
		assert.True(t, p2p.IsCode(err, p2p.CodeUnauthorized), "%v", err)
	})
}
