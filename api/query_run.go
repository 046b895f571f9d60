package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/fedsql"
	"github.com/syndb/federation/internal/registry"
	"github.com/syndb/federation/internal/routing"
)

// runFederated routes a checked query, compiles it for the included nodes,
// starts it on the hub's ClickHouse and reads its first row. A query that
// fails on a connection to a node is followed by a probe of each included
// node alone; those that fail it are excluded and the query started again
// without them. The caller streams the rows before anything else.
func (s *Server) runFederated(ctx context.Context, parsed *fedsql.Parsed, nodes []string, policy Coverage) (driver.Rows, QueryMeta, error) {
	if err := checkNodeNames(nodes); err != nil {
		return nil, QueryMeta{}, err
	}
	need := routing.Need{MinSchema: parsed.MinSchema, Nodes: nodes}
	if err := routing.Validate(need); err != nil {
		return nil, QueryMeta{}, errBadRequest(err.Error())
	}
	snap := s.deps.Registry.Snapshot()
	plan := routing.Route(routing.FromClusters(snap.All()), need)
	meta := QueryMeta{Included: plan.Names(), Excluded: members(plan.Excluded, nodes), Limit: parsed.Limit, Truncated: parsed.Truncated}
	settings := s.querySettings(int(s.cfg.Query.Timeout.Seconds()))
	for k, v := range parsed.Settings {
		if k == "max_execution_time" {
			v = min(v.(int), settings[k].(int))
		}
		settings[k] = v
	}
	ctx = chgo.Context(ctx, chgo.WithSettings(settings))
	for {
		meta.Coverage = coverageOf(len(meta.Included), len(meta.Excluded))
		if err := policy.check(meta); err != nil {
			return nil, meta, err
		}
		if len(meta.Included) == 0 {
			if len(nodes) > 0 && allUnregistered(meta.Excluded) {
				return nil, meta, errBadRequest("no node can answer this query: no registered node has the names it gives: " + describeExclusions(meta.Excluded))
			}
			return nil, meta, &apiError{http.StatusServiceUnavailable, codeUnavailable,
				"no node can answer this query: " + describeExclusions(meta.Excluded)}
		}
		meta.Paths = pathsOf(snap, meta.Included)
		targets := s.targets(snap, meta.Included)
		sql, err := parsed.Compile(targets)
		if errors.Is(err, fedsql.ErrInvalid) {
			s.deps.Log.Warn("query refused after compiling", "err", err)
			return nil, meta, errBadRequest(err.Error())
		}
		if err != nil {
			return nil, meta, err
		}
		rows, err := s.start(ctx, sql)
		if err == nil {
			return rows, meta, nil
		}
		if !clickhouse.IsNetwork(err) {
			return nil, meta, s.queryError(err)
		}
		failed := s.probe(ctx, targets)
		if len(failed) == 0 {
			return nil, meta, s.queryError(err)
		}
		for _, f := range failed {
			meta.Included = slices.DeleteFunc(meta.Included, func(n string) bool { return n == f.Name })
			meta.Excluded = append(meta.Excluded, f)
			s.deps.Log.Warn("query: node failed, running without it", "node", f.Name, "detail", f.Detail)
		}
	}
}

// pathsOf is the path of each named node in snap, "unknown" before the
// hub's first answered ping.
func pathsOf(snap *registry.Snapshot, names []string) map[string]string {
	out := make(map[string]string, len(names))
	for _, n := range names {
		out[n] = "unknown"
		if c, ok := snap.Get(n); ok && c.HealthPath != "" {
			out[n] = c.HealthPath
		}
	}
	return out
}

// querySettings are the ClickHouse settings of every federated statement:
// the query's time bound, its memory and result caps on the hub's
// ClickHouse and, for each remote() connection to a node, connect and
// receive timeouts with a single try, so a stalled node fails its share
// within seconds.
//
// The caps hold on the hub only. A node's share runs as the lab's gateway
// user, whose profile is readonly=1: ClickHouse 18.16 ignores every
// setting the hub sends with it (measured), and current releases clamp
// them to that user's constraints, so each lab's own profile caps its
// share (deploy/clickhouse/users.d/syndb_gateway.xml). result_overflow_mode
// is the query user's profile's, throw (ClickHouse's default): the native
// protocol of 18.16 sends numeric settings only.
func (s *Server) querySettings(maxSeconds int) chgo.Settings {
	q := s.cfg.Query
	return chgo.Settings{
		"max_execution_time":                  maxSeconds,
		"max_memory_usage":                    int(q.MaxMemory),
		"max_result_rows":                     q.MaxRows,
		"max_result_bytes":                    int(q.MaxResultBytes),
		"connect_timeout":                     max(1, int(q.RemoteConnectTimeout.Seconds())),
		"connect_timeout_with_failover_ms":    int(q.RemoteConnectTimeout.Milliseconds()),
		"receive_timeout":                     int(q.RemoteReceiveTimeout.Seconds()),
		"send_timeout":                        int(q.RemoteReceiveTimeout.Seconds()),
		"connections_with_failover_max_tries": 1,
	}
}

// start runs sql and reads up to its first row, so an error ClickHouse
// raises before any row is an error here.
func (s *Server) start(ctx context.Context, sql string) (driver.Rows, error) {
	rows, err := s.deps.Query.Query(runContext(ctx), sql)
	if err != nil {
		return nil, err
	}
	has := rows.Next()
	if !has {
		if err := rows.Err(); err != nil {
			_ = rows.Close()
			return nil, err
		}
	}
	state := peekedEnd
	if has {
		state = peekedRow
	}
	return &peekedRows{Rows: rows, state: state}, nil
}

// probe checks each target's warehouse alone, concurrently, from the hub's
// ClickHouse, and returns the exclusions of those that fail. When the hub's
// own ClickHouse does not answer, no node is blamed.
func (s *Server) probe(ctx context.Context, targets []fedsql.Target) []domain.Exclusion {
	q := s.cfg.Query
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.ProbeTimeout)
	defer cancel()
	pctx := chgo.Context(ctx, chgo.WithSettings(s.querySettings(max(1, int(q.ProbeTimeout.Seconds())))))
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			sql, err := fedsql.ProbeSQL(t)
			if err == nil {
				var one uint8
				err = s.deps.Query.QueryRow(pctx, sql).Scan(&one)
			}
			errs[i] = err
		})
	}
	hubErr := s.deps.Query.Ping(ctx)
	wg.Wait()
	if hubErr != nil {
		s.deps.Log.Warn("query: hub warehouse does not answer; no node blamed", "err", hubErr)
		return nil
	}
	var out []domain.Exclusion
	for i, err := range errs {
		if err == nil {
			continue
		}
		detail := "its warehouse did not answer the query"
		if clickhouse.Code(err) != 0 || errors.Is(err, context.DeadlineExceeded) {
			detail += ": " + s.redact(firstLine(err.Error()))
		}
		out = append(out, domain.Exclusion{Name: targets[i].Name, Reason: ReasonUnreachableNow, Detail: detail})
	}
	return out
}

// targets are the included nodes as the hub's ClickHouse reaches them, in
// each node's registered warehouse database. On the libp2p data plane it
// connects to the workers' gateways, listed as replicas, and logs in as
// the node's name, with the gateways' password (none by default): the
// gateway routes the connection by that name and the node logs in to its
// ClickHouse as its own local user.
// On the direct plane it connects to each node's registered address with
// the shared remote user.
func (s *Server) targets(snap registrySnapshot, names []string) []fedsql.Target {
	q := s.cfg.Query
	gateways := strings.Join(q.Gateways, "|")
	out := make([]fedsql.Target, 0, len(names))
	for _, n := range names {
		c, _ := snap.Get(n)
		t := fedsql.Target{Name: c.Name, Addr: c.ClickHouseAddr, Database: c.ClickHouseDatabase,
			User: q.RemoteUser, Password: q.RemotePassword}
		if q.DataPlane != config.DataPlaneDirect {
			t.Addr, t.User, t.Password = gateways, c.Name, q.GatewayPassword
		}
		out = append(out, t)
	}
	return out
}

// peekState is where peekedRows is: its first row read, or the end.
type peekState int

const (
	peekedEnd  peekState = iota // the result had no row
	peekedRow                   // the first row is read, not yet consumed
	peekedDone                  // the first row was consumed
)

// peekedRows is a result whose first Next already happened.
type peekedRows struct {
	driver.Rows
	state peekState
}

func (r *peekedRows) Next() bool {
	switch r.state {
	case peekedEnd:
		return false
	case peekedRow:
		r.state = peekedDone
		return true
	case peekedDone:
	}
	return r.Rows.Next()
}

// registrySnapshot is what the query needs of a registry snapshot.
type registrySnapshot interface {
	Get(name string) (domain.Cluster, bool)
}

// maxQueryNodes is how many nodes a query may name.
const maxQueryNodes = 1000

// checkNodeNames refuses a list of nodes too long, or with a name no node
// can have, before it is routed or echoed.
func checkNodeNames(nodes []string) error {
	if len(nodes) > maxQueryNodes {
		return errBadRequest(fmt.Sprintf("nodes: %d names, at most %d", len(nodes), maxQueryNodes))
	}
	for i, n := range nodes {
		if !config.ValidName(n) {
			return errBadRequest(fmt.Sprintf("nodes[%d]: not a node name (a lowercase DNS label of at most 63 characters)", i))
		}
	}
	return nil
}

// allUnregistered reports whether every exclusion is of a name no
// registered node has.
func allUnregistered(excluded []domain.Exclusion) bool {
	for _, e := range excluded {
		if e.Reason != domain.ReasonNotRegistered {
			return false
		}
	}
	return len(excluded) > 0
}
