package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/fedsql"
	"github.com/syndb/federation/internal/grpcx"
	"github.com/syndb/federation/internal/store"
)

// A federated query through Flight: GetFlightInfo with a CMD descriptor
// holding a QueryRequest as JSON checks, routes and plans the query and
// answers one endpoint whose ticket reads it; DoGet streams the result.
// Every call needs "authorization: Bearer <API key>" in its metadata.

// flightTicketTTL is how long a planned query may be read. A ticket is
// read once, with the key that planned it.
const flightTicketTTL = 5 * time.Minute

// Metadata keys of a DoGet answer: the nodes read and left out.
const (
	flightMetaIncluded = "x-syndb-nodes-included"
	flightMetaExcluded = "x-syndb-nodes-excluded"
	flightMetaRows     = "x-syndb-rows"
)

type flightPlan struct {
	parsed  *fedsql.Parsed
	nodes   []string
	partial Coverage
	expires time.Time
	// keyID is the API key that planned the query: only it may read it.
	keyID int64
}

// hubFlight is the hub's Arrow Flight service.
type hubFlight struct {
	flight.BaseFlightServer
	s *Server

	mu    sync.Mutex
	plans map[string]flightPlan
}

func (f *hubFlight) authenticate(ctx context.Context) (store.Principal, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	var key string
	for _, v := range md.Get("authorization") {
		if k, ok := strings.CutPrefix(v, "Bearer "); ok {
			key = strings.TrimSpace(k)
		}
	}
	if key == "" {
		return store.Principal{}, status.Error(codes.Unauthenticated, "an API key is required: authorization: Bearer <key>")
	}
	p, err := f.s.keys().Authenticate(ctx, key)
	if errors.Is(err, domain.ErrKeyExpired) {
		return store.Principal{}, status.Error(codes.Unauthenticated, "expired API key")
	}
	if err != nil {
		return store.Principal{}, status.Error(codes.Unauthenticated, "invalid API key")
	}
	return p, nil
}

// GetFlightInfo plans the query in the descriptor's command.
func (f *hubFlight) GetFlightInfo(ctx context.Context, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	principal, err := f.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	if desc.GetType() != flight.DescriptorCMD {
		return nil, status.Error(codes.InvalidArgument, `the descriptor must be a command: {"sql": "...", "nodes": [...]}`)
	}
	var req QueryRequest
	if err := json.Unmarshal(desc.GetCmd(), &req); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "command is not a query: %v", err)
	}
	parsed, err := f.s.parse(req)
	if err != nil {
		return nil, grpcError(err)
	}
	// The result's schema: the query run with LIMIT 0.
	schemaCtx, cancel := context.WithTimeout(ctx, f.s.cfg.Query.Timeout)
	defer cancel()
	rows, meta, err := f.s.runFederated(schemaCtx, parsed.WithLimit(0), req.Nodes, req.Partial)
	if err != nil {
		return nil, grpcError(err)
	}
	r, err := arrowReader(rows)
	if err != nil {
		_ = rows.Close()
		return nil, status.Error(codes.Internal, err.Error())
	}
	schema := r.Schema()
	r.Release()
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, status.Error(codes.Internal, "ticket: "+err.Error())
	}
	ticket := hex.EncodeToString(id)
	f.mu.Lock()
	now := time.Now()
	for k, p := range f.plans {
		if now.After(p.expires) {
			delete(f.plans, k)
		}
	}
	f.plans[ticket] = flightPlan{parsed: parsed, nodes: meta.Included, partial: req.Partial, expires: now.Add(flightTicketTTL), keyID: principal.KeyID}
	f.mu.Unlock()
	return &flight.FlightInfo{
		Schema:           flight.SerializeSchema(schema, memory.DefaultAllocator),
		FlightDescriptor: desc,
		Endpoint: []*flight.FlightEndpoint{{
			Ticket:   &flight.Ticket{Ticket: []byte(ticket)},
			Location: []*flight.Location{{Uri: "grpc://" + f.s.cfg.FlightPublicAddr}},
		}},
		TotalRecords: -1,
		TotalBytes:   -1,
	}, nil
}

// DoGet streams a planned query's result as Arrow record batches.
func (f *hubFlight) DoGet(tkt *flight.Ticket, stream flight.FlightService_DoGetServer) error {
	ctx := stream.Context()
	principal, err := f.authenticate(ctx)
	if err != nil {
		return err
	}
	plan, err := f.take(string(tkt.GetTicket()), principal.KeyID)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.s.cfg.Query.Timeout)
	defer cancel()
	rows, meta, err := f.s.runFederated(ctx, plan.parsed, plan.nodes, plan.partial)
	if err != nil {
		return grpcError(err)
	}
	r, err := arrowReader(rows)
	if err != nil {
		_ = rows.Close()
		return status.Error(codes.Internal, err.Error())
	}
	defer r.Release()
	_ = stream.SetHeader(metadata.Pairs(flightMetaIncluded, strings.Join(meta.Included, ","),
		flightMetaExcluded, describeExclusions(meta.Excluded)))
	w := flight.NewRecordWriter(stream, ipc.WithSchema(r.Schema()))
	defer func() { _ = w.Close() }()
	for r.Next() {
		if err := w.Write(r.RecordBatch()); err != nil {
			return status.Errorf(codes.Unavailable, "send batch: %v", err)
		}
	}
	stream.SetTrailer(metadata.Pairs(flightMetaRows, fmt.Sprint(r.Rows())))
	if err := r.Err(); err != nil {
		return status.Error(codes.Internal, f.s.redact(err.Error()))
	}
	return nil
}

// take hands out the plan of ticket once, to the key that planned it; a
// ticket another key presents stays for its owner.
func (f *hubFlight) take(ticket string, keyID int64) (flightPlan, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	plan, ok := f.plans[ticket]
	if !ok || time.Now().After(plan.expires) {
		return flightPlan{}, status.Error(codes.NotFound, "unknown, used or expired ticket: call GetFlightInfo again")
	}
	if plan.keyID != keyID {
		return flightPlan{}, status.Error(codes.PermissionDenied, "this ticket was planned with another API key")
	}
	delete(f.plans, ticket)
	return plan, nil
}

// grpcError maps the API's errors to gRPC status codes.
func grpcError(err error) error {
	var ae *apiError
	if errors.As(err, &ae) {
		switch ae.status {
		case 400:
			return status.Error(codes.InvalidArgument, ae.message)
		case 503:
			return status.Error(codes.Unavailable, ae.message)
		case 504:
			return status.Error(codes.DeadlineExceeded, ae.message)
		}
		return status.Error(codes.Internal, ae.message)
	}
	return status.Error(codes.Internal, "internal error")
}

// ServeFlight serves the hub's Flight service on the configured address
// until ctx ends.
func (s *Server) ServeFlight(ctx context.Context) error {
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", s.cfg.FlightAddr)
	if err != nil {
		return fmt.Errorf("flight: listen on %s: %w", s.cfg.FlightAddr, err)
	}
	gs := grpc.NewServer(grpcx.Recover(s.deps.Log)...)
	flight.RegisterFlightServiceServer(gs, &hubFlight{s: s, plans: map[string]flightPlan{}})
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	s.deps.Log.Info("flight listening", "addr", lis.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serve flight: %w", err)
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(s.cfg.ShutdownTimeout):
		gs.Stop()
	}
	return nil
}
