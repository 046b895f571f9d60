package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync/atomic"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/apache/arrow-go/v18/arrow"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/wire"
)

// benchmarkStore is what the benchmark activities need of PostgreSQL.
type benchmarkStore interface {
	RecordBenchmarks(ctx context.Context, rows []domain.Benchmark) error
}

// BenchmarkOptions bound one node's benchmark.
type BenchmarkOptions struct {
	// Pings and Queries are how many HealthPings and aggregates are timed;
	// the figure is their median.
	Pings, Queries int
	// FlightRows bounds the Flight read of the node's neurons.
	FlightRows uint64
	// PingTimeout bounds each ping, QueryTimeout each aggregate (its
	// connection included), FlightTimeout the whole Flight read.
	PingTimeout, QueryTimeout, FlightTimeout time.Duration
}

// Defaults of BenchmarkOptions.
const (
	DefaultBenchmarkPings         = 3
	DefaultBenchmarkQueries       = 3
	DefaultBenchmarkFlightRows    = 100_000
	DefaultBenchmarkQueryTimeout  = 15 * time.Second
	DefaultBenchmarkFlightTimeout = time.Minute
)

// Benchmarks holds the activities of the node benchmark workflow.
type Benchmarks struct {
	store   benchmarkStore
	nodes   nodeCaller
	streams streamDialer
	flight  nodeFlight
	opts    BenchmarkOptions
	log     *slog.Logger
}

// NewBenchmarks returns the benchmark activities; zero options take their
// defaults. The aggregate needs nodes to open libp2p streams (a
// *p2p.Client does); without, it is recorded as failed.
func NewBenchmarks(st benchmarkStore, nodes nodeCaller, opts BenchmarkOptions, log *slog.Logger) *Benchmarks {
	opts.Pings = positiveOr(opts.Pings, DefaultBenchmarkPings)
	opts.Queries = positiveOr(opts.Queries, DefaultBenchmarkQueries)
	opts.FlightRows = positiveOr(opts.FlightRows, DefaultBenchmarkFlightRows)
	opts.PingTimeout = positiveOr(opts.PingTimeout, health.DefaultPingTimeout)
	opts.QueryTimeout = positiveOr(opts.QueryTimeout, DefaultBenchmarkQueryTimeout)
	opts.FlightTimeout = positiveOr(opts.FlightTimeout, DefaultBenchmarkFlightTimeout)
	streams, _ := nodes.(streamDialer)
	return &Benchmarks{store: st, nodes: nodes, streams: streams, flight: newNodeFlight(nodes), opts: opts, log: log}
}

// positiveOr is v, or def when v is not positive.
func positiveOr[T int | uint64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// BenchmarkNode measures one node, every kind in turn: the HealthPing
// round trip, the standard aggregate over SQL over libp2p (a new
// connection each time, as a federated query's remote() opens), and a
// bounded Flight read of its neurons over the hub's data plane. A kind
// that cannot be measured is a failed figure with the reason; when no ping
// is answered the other kinds are not tried and fail with that reason. It
// fails only when its context ends.
func (a *Benchmarks) BenchmarkNode(ctx context.Context, p domain.BenchmarkNodeParams) (domain.BenchmarkNodeResult, error) {
	n := p.Node
	var done atomic.Int32
	stop := heartbeat(ctx, func() any {
		return fmt.Sprintf("%s: %d/%d kinds measured", n.Name, done.Load(), len(domain.BenchmarkKinds))
	})
	defer stop()
	started := time.Now()
	ping, answered := a.ping(ctx, n)
	figs := []domain.BenchmarkFigure{ping}
	done.Add(1)
	if answered == 0 {
		for _, k := range domain.BenchmarkKinds[1:] {
			figs = append(figs, domain.FailedFigure(k, "not measured: the node answered no ping: "+ping.Error, time.Now()))
		}
	} else {
		figs = append(figs, a.aggregate(ctx, n))
		done.Add(1)
		figs = append(figs, a.flightRead(ctx, n)...)
	}
	if err := ctx.Err(); err != nil {
		return domain.BenchmarkNodeResult{}, fmt.Errorf("benchmark of %s: %w", n.Name, err)
	}
	failed := 0
	for _, f := range figs {
		if !f.OK {
			failed++
		}
	}
	activity.GetLogger(ctx).Info("node benchmarked", "node", n.Name, "failed_kinds", failed, "took", time.Since(started))
	return domain.BenchmarkNodeResult{Figures: figs}, nil
}

// path is the path of the hub's connection to the node now ("" when the
// caller cannot tell).
func (a *Benchmarks) path(n domain.NodeRef) string {
	if pr, ok := a.nodes.(pathReporter); ok {
		path, _ := pr.Route(n.PeerID)
		return path
	}
	return ""
}

// measured is a successful figure of kind, measured now.
func (a *Benchmarks) measured(n domain.NodeRef, kind domain.BenchmarkKind, v float64) domain.BenchmarkFigure {
	return domain.BenchmarkFigure{Kind: kind, Value: v, OK: true, Path: a.path(n), MeasuredAt: time.Now().UTC()}
}

// failed is a failed figure of kind, now, on the path the connection takes.
func (a *Benchmarks) failed(n domain.NodeRef, kind domain.BenchmarkKind, reason string) domain.BenchmarkFigure {
	f := domain.FailedFigure(kind, reason, time.Now().UTC())
	f.Path = a.path(n)
	return f
}

// ping times Pings HealthPings; the figure is the median round trip, and
// failed when any ping failed. answered counts the pings answered.
func (a *Benchmarks) ping(ctx context.Context, n domain.NodeRef) (fig domain.BenchmarkFigure, answered int) {
	var (
		rtts    []time.Duration
		lastErr error
	)
	for range a.opts.Pings {
		pctx, cancel := context.WithTimeout(ctx, a.opts.PingTimeout)
		var resp wire.HealthPingResponse
		start := time.Now()
		err := a.nodes.Call(pctx, n.PeerID, n.Addrs, p2p.HealthPing, &wire.HealthPingRequest{Nonce: uint64(start.UnixNano())}, &resp)
		rtt := time.Since(start)
		cancel()
		if err != nil {
			lastErr = err
			continue
		}
		rtts = append(rtts, rtt)
	}
	if lastErr != nil {
		return a.failed(n, domain.BenchmarkPing, fmt.Sprintf("%d of %d pings failed: %v", a.opts.Pings-len(rtts), a.opts.Pings, lastErr)), len(rtts)
	}
	return a.measured(n, domain.BenchmarkPing, ms(median(rtts))), len(rtts)
}

// aggregate times the standard aggregate Queries times; the figure is the
// median, and failed when any failed.
func (a *Benchmarks) aggregate(ctx context.Context, n domain.NodeRef) domain.BenchmarkFigure {
	if a.streams == nil {
		return a.failed(n, domain.BenchmarkAggregate, "SQL over libp2p needs a libp2p host, which this worker lacks")
	}
	times := make([]time.Duration, 0, a.opts.Queries)
	for range a.opts.Queries {
		d, err := a.query(ctx, n)
		if err != nil {
			return a.failed(n, domain.BenchmarkAggregate, fmt.Sprintf("%s over SQL over libp2p: %v", domain.BenchmarkAggregateSQL, err))
		}
		times = append(times, d)
	}
	return a.measured(n, domain.BenchmarkAggregate, ms(median(times)))
}

// query runs the standard aggregate once on a new connection to the node's
// ClickHouse, over a libp2p stream of the protocol the hub's gateway
// forwards remote() connections on (the node logs it in as its local
// gateway user, to its warehouse database), and returns how long the
// connection and the answer took.
func (a *Benchmarks) query(ctx context.Context, n domain.NodeRef) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, a.opts.QueryTimeout)
	defer cancel()
	conn, err := ch.Open(&ch.Options{
		// Addr is only a label (host:port): DialContext opens the stream.
		Addr: []string{n.Name + ":0"},
		Auth: ch.Auth{Username: n.Name},
		DialContext: func(ctx context.Context, _ string) (net.Conn, error) {
			c, err := a.streams.DialStream(ctx, n.PeerID, n.Addrs, p2p.ClickHouseStream)
			if err != nil {
				return nil, err
			}
			return sqlStream{c}, nil
		},
		DialTimeout:  a.opts.QueryTimeout,
		MaxOpenConns: 1,
	})
	if err != nil {
		return 0, fmt.Errorf("clickhouse client: %w", err)
	}
	defer func() { _ = conn.Close() }()
	start := time.Now()
	var (
		count uint64
		mean  *float64
	)
	if err := conn.QueryRow(ctx, domain.BenchmarkAggregateSQL).Scan(&count, &mean); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// sqlStream is a libp2p stream as a ClickHouse client's connection. The
// client sends its local address as the query's initial_address, which
// ClickHouse parses as host:port; a stream's is a peer ID, so it says
// 0.0.0.0:0 instead.
type sqlStream struct{ net.Conn }

// LocalAddr is an address ClickHouse can parse.
func (sqlStream) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4zero} }

// flightRead reads up to FlightRows of the node's neurons over Flight, as
// a job reads a node (a ticket from GetFlightEndpoint, then DoGet over the
// data plane the node's location names), and returns the rows a second
// and the Arrow data's MB a second of the whole read.
func (a *Benchmarks) flightRead(ctx context.Context, n domain.NodeRef) []domain.BenchmarkFigure {
	fail := func(reason string) []domain.BenchmarkFigure {
		return []domain.BenchmarkFigure{a.failed(n, domain.BenchmarkFlightRows, reason), a.failed(n, domain.BenchmarkFlightBytes, reason)}
	}
	ctx, cancel := context.WithTimeout(ctx, a.opts.FlightTimeout)
	defer cancel()
	start := time.Now()
	rd, done, err := a.flight.read(ctx, n, &wire.FlightQuery{Table: "neuron", Limit: a.opts.FlightRows})
	if err != nil {
		return fail(flightReason(err))
	}
	var rows, size int64
	for rd.Next() {
		rec := rd.RecordBatch()
		rows += rec.NumRows()
		size += recordBytes(rec)
	}
	err = rd.Err()
	done()
	took := time.Since(start)
	switch {
	case err != nil:
		return fail(flightReason(err))
	case rows == 0:
		return fail("no rows to read: the node's neuron table is empty")
	}
	secs := took.Seconds()
	return []domain.BenchmarkFigure{a.measured(n, domain.BenchmarkFlightRows, float64(rows)/secs),
		a.measured(n, domain.BenchmarkFlightBytes, float64(size)/1e6/secs)}
}

// recordBytes is the size of rec's Arrow buffers, children included.
func recordBytes(rec arrow.RecordBatch) int64 {
	var n int64
	for _, c := range rec.Columns() {
		n += dataBytes(c.Data())
	}
	return n
}

func dataBytes(d arrow.ArrayData) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += dataBytes(c)
	}
	return n
}

// flightReason is why a Flight read failed: the message of a refusal (an
// application error), or the error.
func flightReason(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	return err.Error()
}

// RecordBenchmarks writes rows of the calling run (the activity's workflow
// and run IDs) to PostgreSQL, each once however often it is retried.
func (a *Benchmarks) RecordBenchmarks(ctx context.Context, p domain.RecordBenchmarksParams) (domain.RecordBenchmarksResult, error) {
	run := activity.GetInfo(ctx).WorkflowExecution
	rows := make([]domain.Benchmark, 0, len(p.Rows))
	for _, r := range p.Rows {
		if !r.Kind.Valid() {
			return domain.RecordBenchmarksResult{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("%s: unknown benchmark kind %q", r.Node, r.Kind), domain.ErrTypeInvalid, nil)
		}
		r.WorkflowID, r.RunID, r.Unit = run.ID, run.RunID, r.Kind.Unit()
		if r.OK {
			r.Error = ""
		} else {
			r.Value = nil
			r.Error = domain.CapText(orFailed(r.Error), domain.MaxBenchmarkError)
		}
		rows = append(rows, r)
	}
	if err := a.store.RecordBenchmarks(ctx, rows); err != nil {
		return domain.RecordBenchmarksResult{}, err
	}
	return domain.RecordBenchmarksResult{Recorded: len(rows)}, nil
}

// orFailed is a failed row's reason, "failed" when it gives none.
func orFailed(reason string) string {
	if reason == "" {
		return "failed"
	}
	return reason
}

// median is the middle of ds (the mean of the two middles of an even
// count); 0 for none.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
