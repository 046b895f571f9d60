package nodeagent

import (
	"context"
	"crypto/tls"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/libp2p/go-libp2p/core/crypto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/syndb/federation/internal/chnative"
	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/flightcodec"
	"github.com/syndb/federation/internal/grpcx"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/wire"
)

const (
	// maxPutMessage caps one FlightData message a DoPut client may send:
	// the memory one stream can make the node hold at once.
	maxPutMessage = 64 << 20
	// flightStopGrace is how long a stopping agent lets Flight streams
	// finish before it cuts them.
	flightStopGrace = 10 * time.Second
)

// flightService is the node's Arrow Flight service over its ClickHouse.
// DoGet streams what a ticket this node signed reads; DoPut loads records
// into the table a ticket names. Every other method is Unimplemented.
//
// A ticket is signed by this node, short-lived and good for one stream
// (used records its ID until it expires). Over TCP, which carries no
// libp2p identity, it is good only over a connection from an IP address
// the hub's libp2p connections came from when it asked for the ticket;
// over a libp2p stream (flightp2p.go), only from the peer it was issued to.
type flightService struct {
	flight.BaseFlightServer
	name string
	key  crypto.PrivKey
	used *usedTickets
	// started is when the service started: tickets issued before then may
	// have been used by a process whose used set is gone.
	started time.Time
	conn    func(ctx context.Context) (driver.Conn, error)
	log     *slog.Logger
	// mem allocates record batches (the Go allocator when nil).
	mem memory.Allocator
	// batchRows caps the rows of one DoGet batch (arrowconv's default when 0).
	batchRows int
	// native is the ClickHouse DoGet reads native blocks from, column by
	// column; when nil, DoGet scans rows through conn.
	native *config.ClickHouse
}

// newFlightServer returns a gRPC server serving svc.
func newFlightServer(svc *flightService) *grpc.Server {
	if svc.mem == nil {
		svc.mem = memory.DefaultAllocator
	}
	if svc.used == nil {
		svc.used = newUsedTickets(maxUsedTickets)
	}
	svc.started = time.Now()
	s := grpc.NewServer(append(grpcx.Recover(svc.log), grpc.MaxRecvMsgSize(maxPutMessage), flightcodec.ServerOption())...)
	flight.RegisterFlightServiceServer(s, svc)
	return s
}

// startFlight serves the node's Flight service on cfg.FlightAddr (none when
// it is empty), until close. A port of 0 is resolved, so the address the
// node registers and hands out in tickets is the one it listens on.
func (a *Agent) startFlight() error {
	if a.cfg.FlightAddr == "" {
		return nil
	}
	lis, err := new(net.ListenConfig).Listen(context.Background(), "tcp", a.cfg.FlightAddr)
	if err != nil {
		return fmt.Errorf("flight server: listen on %s (SYNDB_FLIGHT_ADDR): %w", a.cfg.FlightAddr, err)
	}
	if _, port, _ := net.SplitHostPort(a.cfg.FlightAddr); port == "0" {
		a.cfg.FlightAddr = lis.Addr().String()
	}
	if a.flightTLS != nil {
		// TLS on the TCP listener only: the same server also serves
		// libp2p streams, which libp2p secures.
		lis = tls.NewListener(lis, a.flightTLS)
	}
	a.flight = newFlightServer(&flightService{name: a.cfg.Name, key: a.key, conn: a.conn, log: a.log,
		native: &a.cfg.ClickHouse})
	a.wg.Go(func() {
		if err := a.flight.Serve(lis); err != nil {
			a.log.Error("flight server stopped", "err", err)
		}
	})
	a.log.Info("flight server listening", "addr", lis.Addr().String(), "tls", a.flightTLS != nil)
	return nil
}

// stopFlight lets running Flight streams finish for flightStopGrace, then
// cuts them.
func (a *Agent) stopFlight() {
	if a.flight == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		a.flight.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(flightStopGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		a.log.Warn("flight streams still running at shutdown; cutting them", "grace", flightStopGrace)
		a.flight.Stop()
		<-done
	}
}

// errTicketBound refuses a ticket presented over a connection from an
// address it is not bound to.
var errTicketBound = fmt.Errorf("%w: bound to another address", ErrTicket)

// verify checks a ticket presented to this node and uses it up:
// Unauthenticated unless it is a valid ticket for method, PermissionDenied
// when it was used already or comes over a connection from an address it
// is not bound to.
func (s *flightService) verify(ctx context.Context, method string, signed []byte) (*wire.FlightTicket, error) {
	now := time.Now()
	from := ""
	gp, _ := peer.FromContext(ctx)
	if gp != nil {
		from = gp.Addr.String()
	}
	holder, overLibp2p := flightPeer(gp)
	t, err := VerifyTicket(s.key.GetPublic(), s.name, signed, now)
	if err == nil && t.GetWrite() != (method == "DoPut") {
		kind := "read"
		if t.GetWrite() {
			kind = "write"
		}
		err = fmt.Errorf("%w: a %s ticket does not allow %s", ErrTicket, kind, method)
	}
	code := codes.Unauthenticated
	if err == nil {
		code = codes.PermissionDenied
		if t.GetIssuedAt().AsTime().Before(s.started) {
			err = fmt.Errorf("%w: issued at %s, before this node's Flight server started", ErrTicketUsed,
				t.GetIssuedAt().AsTime().Format(time.RFC3339))
		} else if overLibp2p && t.GetHolder() != holder.ID.String() {
			err = fmt.Errorf("%w: the ticket was issued to peer %s, not %s", errTicketHolder, t.GetHolder(), holder)
		} else if !overLibp2p && !slices.Contains(t.GetHolderIps(), clientIP(from)) {
			err = fmt.Errorf("%w: the ticket was issued to a peer at %s, not %s", errTicketBound,
				strings.Join(t.GetHolderIps(), ", "), from)
		} else if err = s.used.use(t, now); errors.Is(err, errTicketsFull) {
			code = codes.ResourceExhausted
		}
	}
	if err != nil {
		s.log.Warn("flight ticket refused", "method", method, "from", from, "err", err)
		return nil, status.Error(code, err.Error())
	}
	return t, nil
}

// clientIP is the IP address of a gRPC peer address as holder_ips spell
// it ("" when it has none).
func clientIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return canonicalIP(net.ParseIP(host))
}

// table returns the node's ClickHouse connection and the columns of table;
// NotFound when there is no such table.
func (s *flightService) table(ctx context.Context, table string) (driver.Conn, []column, error) {
	conn, err := s.conn(ctx)
	if err != nil {
		return nil, nil, status.Errorf(codes.Unavailable, "clickhouse: %v", err)
	}
	cols, err := tableColumns(ctx, conn, table)
	if err != nil {
		if p2p.IsCode(err, p2p.CodeUnavailable) {
			return nil, nil, status.Error(codes.Unavailable, err.Error())
		}
		return nil, nil, status.Error(codes.Internal, err.Error())
	}
	if len(cols) == 0 {
		return nil, nil, status.Errorf(codes.NotFound, "no table %q on node %s", table, s.name)
	}
	return conn, cols, nil
}

// DoGet streams the rows a ticket reads, one bounded batch at a time, from
// a query that follows the client's stream: a client that goes away
// cancels it.
func (s *flightService) DoGet(tkt *flight.Ticket, stream flight.FlightService_DoGetServer) error {
	// Cancelled on every return, so that closing the rows of a query cut
	// short stops it on the server instead of draining it.
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	t, err := s.verify(ctx, "DoGet", tkt.GetTicket())
	if err != nil {
		return err
	}
	q := t.GetQuery()
	conn, cols, err := s.table(ctx, q.GetTable())
	if err != nil {
		return err
	}
	if len(q.GetDatasetIds()) > 0 && !slices.ContainsFunc(cols, func(c column) bool { return c.name == "dataset_id" }) {
		return status.Errorf(codes.InvalidArgument, "table %s has no dataset_id to filter on", q.GetTable())
	}
	names, types, err := pick(q.GetTable(), cols, q.GetColumns())
	if err != nil {
		return err
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = quote(n)
	}
	sql := "SELECT " + strings.Join(quoted, ", ") + " FROM " + quote(q.GetTable()) + where(datasetFilter(q.GetDatasetIds()))
	if q.GetLimit() > 0 {
		sql += fmt.Sprintf(" LIMIT %d", q.GetLimit())
	}
	start := time.Now()
	rdr, err := s.read(ctx, conn, q.GetTable(), sql, names, types)
	if err != nil {
		return err
	}
	defer func() {
		cancel()
		rdr.Release()
	}()
	// The Flight writer sends no end-of-stream message of its own: a
	// stream that ends in an error status is never mistaken for a
	// complete result. It sends each batch from its own buffers.
	w := flightcodec.NewWriter(stream, ipc.WithSchema(rdr.Schema()), ipc.WithAllocator(s.mem))
	defer func() { _ = w.Close() }()
	batches := 0
	for rdr.Next() {
		if err := w.Write(rdr.RecordBatch()); err != nil {
			return sendStatus(ctx, err)
		}
		batches++
	}
	if err := rdr.Err(); err != nil {
		return chStatus(err, "read %s", q.GetTable())
	}
	if err := w.Close(); err != nil {
		return sendStatus(ctx, err)
	}
	s.log.Info("flight DoGet served", "table", q.GetTable(), "columns", len(names), "rows", rdr.Rows(),
		"batches", batches, "took", time.Since(start), "holder", t.GetHolder(), "transport", transport(ctx))
	return nil
}

// pick returns the names and types of the columns asked for (all when
// none); NotFound when the table lacks one.
func pick(table string, cols []column, want []string) (names, types []string, err error) {
	if len(want) == 0 {
		for _, c := range cols {
			names, types = append(names, c.name), append(types, c.typ)
		}
		return names, types, nil
	}
	byName := make(map[string]string, len(cols))
	for _, c := range cols {
		byName[c.name] = c.typ
	}
	for _, n := range want {
		typ, ok := byName[n]
		if !ok {
			return nil, nil, status.Errorf(codes.NotFound, "table %s has no column %q", table, n)
		}
		names, types = append(names, n), append(types, typ)
	}
	return names, types, nil
}

// chStatus maps a ClickHouse error to a gRPC status: NotFound for what does
// not exist, Unavailable when the server cannot be reached, Internal
// otherwise.
func chStatus(err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...) + ": " + err.Error()
	var ex *chgo.Exception
	var ne net.Error
	if nex := (*chnative.Exception)(nil); errors.As(err, &nex) {
		ex = &chgo.Exception{Code: int32(nex.Code), Name: nex.Name, Message: nex.Message}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, msg)
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, msg)
	case ex != nil || errors.As(err, &ex):
		switch {
		case clickhouse.IsMissing(ex):
			return status.Error(codes.NotFound, msg)
		case ex.Code == clickhouse.CodeTypeMismatch, ex.Code == clickhouse.CodeIllegalColumn:
			return status.Error(codes.InvalidArgument, msg)
		case ex.Code == clickhouse.CodeTooManySimultaneousQueries:
			return status.Error(codes.Unavailable, msg)
		case ex.Code == clickhouse.CodeMemoryLimitExceeded:
			return status.Error(codes.ResourceExhausted, msg)
		}
		return status.Error(codes.Internal, msg)
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, sqldriver.ErrBadConn), errors.Is(err, chgo.ErrAcquireConnTimeout):
		return status.Error(codes.Unavailable, msg)
	}
	return status.Error(codes.Internal, msg)
}

// sendStatus is the status of a failed exchange with the Flight client:
// its own cancellation, usually.
func sendStatus(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Errorf(codes.Unavailable, "flight stream: %v", err)
}
