package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/fedsql"
	"github.com/syndb/federation/internal/flightcodec"
	"github.com/syndb/federation/internal/grpcx"
	"github.com/syndb/federation/internal/store"
)

// A federated query through Flight: GetFlightInfo with a CMD descriptor
// holding a QueryRequest as JSON checks, routes and plans the query and
// answers one endpoint whose ticket reads it; DoGet streams the result.
// Every call needs "authorization: Bearer <API key>" in its metadata, of a
// key whose role is the method's in flightRoutes or above.

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

// FlightRoute is one method of the hub's Flight service and the least role
// a key needs to call it.
type FlightRoute struct {
	// Method is the FlightService method: GetFlightInfo, DoGet.
	Method string
	// Role is store.RoleReader, store.RoleOperator or store.RoleAdmin.
	Role string
}

// flightRoutes is the Flight service's route table, as routes is the HTTP
// API's: a federated query is a reader's, as POST /v1/query is. Every
// other FlightService method (DoPut, DoAction, ListActions, ListFlights,
// GetSchema, Handshake, DoExchange, PollFlightInfo) needs a key too, and
// then answers Unimplemented.
var flightRoutes = []FlightRoute{
	{"GetFlightInfo", store.RoleReader},
	{"DoGet", store.RoleReader},
}

// FlightRoutes lists the Flight methods the hub serves and the least role
// each needs.
func FlightRoutes() []FlightRoute { return slices.Clone(flightRoutes) }

// principalCtxKey carries the caller a Flight call was authorized for.
type principalCtxKey struct{}

// flightPrincipal is the caller authorize let through on ctx.
func flightPrincipal(ctx context.Context) (store.Principal, error) {
	p, ok := ctx.Value(principalCtxKey{}).(store.Principal)
	if !ok {
		return store.Principal{}, status.Error(codes.Unauthenticated, "an API key is required: authorization: Bearer <key>")
	}
	return p, nil
}

// authorize authenticates the API key of a call to fullMethod and checks
// its role against flightRoutes, before any handler runs: no key or an
// invalid or revoked one is Unauthenticated, a role below the method's
// PermissionDenied, a method the hub does not serve Unimplemented. The
// returned context carries the caller.
func (f *hubFlight) authorize(ctx context.Context, fullMethod string) (context.Context, error) {
	p, err := f.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	method := path.Base(fullMethod)
	i := slices.IndexFunc(flightRoutes, func(r FlightRoute) bool { return r.Method == method })
	if i < 0 {
		return nil, status.Errorf(codes.Unimplemented, "the hub's Flight service does not serve %s: it serves GetFlightInfo and DoGet", method)
	}
	if need := flightRoutes[i].Role; store.RoleRank(p.Role) < store.RoleRank(need) {
		return nil, status.Errorf(codes.PermissionDenied, "%s needs the %s role or above; this key's role is %s", method, need, p.Role)
	}
	return context.WithValue(ctx, principalCtxKey{}, p), nil
}

// authenticate reads "authorization: Bearer <key>" from the call's metadata
// and checks the key.
func (f *hubFlight) authenticate(ctx context.Context) (store.Principal, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	var key string
	for _, v := range md.Get("authorization") {
		if scheme, k, ok := strings.Cut(v, " "); ok && strings.EqualFold(scheme, "Bearer") {
			key = strings.TrimSpace(k)
		}
	}
	if key == "" {
		return store.Principal{}, status.Error(codes.Unauthenticated, "an API key is required: authorization: Bearer <key>")
	}
	p, wait, err := f.s.checkKey(ctx, flightPeerAddr(ctx), key)
	if wait > 0 {
		return store.Principal{}, status.Error(codes.ResourceExhausted, err.Error())
	}
	if errors.Is(err, domain.ErrKeyExpired) {
		return store.Principal{}, status.Error(codes.Unauthenticated, "expired API key")
	}
	if errors.Is(err, domain.ErrUnauthorized) {
		return store.Principal{}, status.Error(codes.Unauthenticated, "invalid or revoked API key")
	}
	if err != nil {
		f.s.deps.Log.Error("flight: check api key", "err", err)
		return store.Principal{}, status.Error(codes.Unavailable, "the API key cannot be checked now; try again")
	}
	// The key's bucket is the HTTP API's: Flight calls take its tokens too.
	if wait, ok := f.s.limits.allow(p.KeyID, time.Now()); !ok {
		return store.Principal{}, status.Error(codes.ResourceExhausted, f.s.limits.errRateLimited(wait).Error())
	}
	return p, nil
}

// interceptors authorize every unary and streaming call (see authorize)
// and audit it once, however it ended: every Flight call plans or runs a
// federated query.
func (f *hubFlight) interceptors() []grpc.ServerOption {
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		actx, err := f.authorize(ctx, info.FullMethod)
		if err != nil {
			f.audit(ctx, info.FullMethod, start, err)
			return nil, err
		}
		resp, err := h(actx, req)
		f.audit(actx, info.FullMethod, start, err)
		return resp, err
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		start := time.Now()
		ctx, err := f.authorize(ss.Context(), info.FullMethod)
		if err != nil {
			f.audit(ss.Context(), info.FullMethod, start, err)
			return err
		}
		err = h(srv, authorizedStream{ServerStream: ss, ctx: ctx})
		f.audit(ctx, info.FullMethod, start, err)
		return err
	}
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream)}
}

// authorizedStream is a stream whose context carries its caller.
type authorizedStream struct {
	grpc.ServerStream
	ctx context.Context //nolint:containedctx // a grpc.ServerStream carries its context
}

func (s authorizedStream) Context() context.Context { return s.ctx }

// GetFlightInfo plans the query in the descriptor's command.
func (f *hubFlight) GetFlightInfo(ctx context.Context, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	principal, err := flightPrincipal(ctx)
	if err != nil {
		return nil, err
	}
	if desc.GetType() != flight.DescriptorCMD {
		return nil, status.Error(codes.InvalidArgument, `the descriptor must be a command: {"sql": "...", "nodes": [...]}`)
	}
	var req QueryRequest
	dec := json.NewDecoder(bytes.NewReader(desc.GetCmd()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "command is not a query: %v", err)
	}
	if dec.More() {
		return nil, status.Error(codes.InvalidArgument, "command is not a query: more than one JSON value")
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
	plan := flightPlan{parsed: parsed, nodes: meta.Included, partial: req.Partial, keyID: principal.KeyID}
	if err := f.keep(ticket, plan, time.Now()); err != nil {
		return nil, err
	}
	return &flight.FlightInfo{
		Schema:           flight.SerializeSchema(schema, memory.DefaultAllocator),
		FlightDescriptor: desc,
		Endpoint: []*flight.FlightEndpoint{{
			Ticket:   &flight.Ticket{Ticket: []byte(ticket)},
			Location: []*flight.Location{{Uri: f.s.flightLocation()}},
		}},
		TotalRecords: -1,
		TotalBytes:   -1,
	}, nil
}

// DoGet streams a planned query's result as Arrow record batches.
func (f *hubFlight) DoGet(tkt *flight.Ticket, stream flight.FlightService_DoGetServer) error {
	ctx := stream.Context()
	principal, err := flightPrincipal(ctx)
	if err != nil {
		return err
	}
	// A DoGet is one of the key's queries at once, as a POST /v1/query is.
	release, ok := f.s.limits.startQuery(principal.KeyID)
	if !ok {
		return status.Error(codes.ResourceExhausted, f.s.limits.errTooManyQueries().Error())
	}
	defer release()
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
	w := flightcodec.NewWriter(stream, ipc.WithSchema(r.Schema()))
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

// maxPlansPerKey is how many planned queries one API key may hold unread:
// a plan keeps its parsed query until it is read or expires.
const maxPlansPerKey = 64

// keep holds plan under ticket until it is read or expires (flightTicketTTL
// from now), dropping the expired ones first; a key that already holds
// maxPlansPerKey unread plans is refused.
func (f *hubFlight) keep(ticket string, plan flightPlan, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	held := 0
	for k, p := range f.plans {
		switch {
		case now.After(p.expires):
			delete(f.plans, k)
		case p.keyID == plan.keyID:
			held++
		}
	}
	if held >= maxPlansPerKey {
		return status.Errorf(codes.ResourceExhausted, "this API key holds %d planned queries it has not read: read them (DoGet) or let them expire (%s)",
			held, flightTicketTTL)
	}
	plan.expires = now.Add(flightTicketTTL)
	f.plans[ticket] = plan
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
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			return status.Error(codes.InvalidArgument, ae.message)
		case http.StatusNotFound:
			return status.Error(codes.NotFound, ae.message)
		case http.StatusConflict:
			// The partial-answer policy refused the nodes that can answer.
			return status.Error(codes.FailedPrecondition, ae.message)
		case http.StatusTooManyRequests:
			return status.Error(codes.ResourceExhausted, ae.message)
		case http.StatusBadGateway, http.StatusServiceUnavailable:
			return status.Error(codes.Unavailable, ae.message)
		case http.StatusGatewayTimeout:
			return status.Error(codes.DeadlineExceeded, ae.message)
		}
		return status.Error(codes.Internal, ae.message)
	}
	return status.Error(codes.Internal, "internal error")
}

// flightLocation is the hub Flight server's URI in FlightInfo:
// grpc+tls:// when it serves TLS, grpc:// otherwise.
func (s *Server) flightLocation() string {
	if s.deps.TLS != nil {
		return "grpc+tls://" + s.cfg.FlightPublicAddr
	}
	return "grpc://" + s.cfg.FlightPublicAddr
}

// newFlightServer builds the hub's Flight gRPC server: every call
// authorized by API key and role, over TLS with deps.TLS.
func (s *Server) newFlightServer() *grpc.Server {
	f := &hubFlight{s: s, plans: map[string]flightPlan{}}
	opts := append(grpcx.Recover(s.deps.Log), f.interceptors()...)
	opts = append(opts, flightcodec.ServerOption())
	if s.deps.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.deps.TLS.serverConfig())))
	}
	gs := grpc.NewServer(opts...)
	flight.RegisterFlightServiceServer(gs, f)
	return gs
}

// ServeFlight serves the hub's Flight service on the configured address
// until ctx ends.
func (s *Server) ServeFlight(ctx context.Context) error {
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", s.cfg.FlightAddr)
	if err != nil {
		return fmt.Errorf("flight: listen on %s: %w", s.cfg.FlightAddr, err)
	}
	return s.serveFlight(ctx, lis)
}

// serveFlight serves the Flight service on lis until ctx ends.
func (s *Server) serveFlight(ctx context.Context, lis net.Listener) error {
	gs := s.newFlightServer()
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	if s.deps.TLS != nil {
		s.deps.Log.Info("flight listening over TLS", "addr", lis.Addr().String(), "location", s.flightLocation())
	} else {
		s.deps.Log.Warn("flight listening in plaintext: set SYNDB_TLS_CERT and SYNDB_TLS_KEY to serve gRPC over TLS",
			"addr", lis.Addr().String(), "location", s.flightLocation())
	}
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
