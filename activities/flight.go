package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/libp2p/go-libp2p/core/protocol"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/wire"
)

// nodeFlight reads and writes nodes' tables over their Flight servers.
// streams, when set, opens libp2p streams to nodes, for the nodes that
// serve Flight over libp2p.
type nodeFlight struct {
	nodes   nodeCaller
	streams streamDialer
}

// streamDialer opens a libp2p stream to a node as a net.Conn.
type streamDialer interface {
	DialStream(ctx context.Context, peerID string, addrs []string, id protocol.ID) (net.Conn, error)
}

// newNodeFlight reads and writes over nodes; when nodes can also open
// streams (a *p2p.Client can), Flight over libp2p is read through it.
func newNodeFlight(nodes nodeCaller) nodeFlight {
	streams, _ := nodes.(streamDialer)
	return nodeFlight{nodes: nodes, streams: streams}
}

// Flight locations a node's GetFlightEndpoint hands out.
const (
	// grpcScheme is a Flight server at a TCP host:port.
	grpcScheme = "grpc://"
	// libp2pScheme is the node's own Flight server over libp2p, on
	// p2p.FlightProtocol: libp2p://<the node's peer ID>.
	libp2pScheme = "libp2p://"
)

// dial asks node for a ticket (GetFlightEndpoint) and connects to its
// Flight server, over libp2p or TCP as the location says. The ticket is
// good for one stream, started within its lifetime (a minute), from this
// host: over libp2p, from its peer; over TCP, from the address this host's
// libp2p connection to the node comes from. Each stream asks for its own,
// right before it starts.
// relayed is set once a stream the client opened runs over a relayed
// connection.
func (f nodeFlight) dial(ctx context.Context, node domain.NodeRef, q *wire.FlightQuery, write bool, relayed *atomic.Bool) (flight.Client, []byte, error) {
	var ep wire.GetFlightEndpointResponse
	req := &wire.GetFlightEndpointRequest{Query: q, Write: write}
	if err := f.nodes.Call(ctx, node.PeerID, node.Addrs, p2p.FlightEndpoint, req, &ep); err != nil {
		return nil, nil, classify(fmt.Errorf("%s: %w", node.Name, err))
	}
	target, opts, err := f.route(node, ep.GetLocation(), relayed)
	if err != nil {
		return nil, nil, err
	}
	opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	c, err := flight.NewClientWithMiddleware(target, nil, nil, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: flight client: %w", node.Name, err)
	}
	return c, ep.GetTicket(), nil
}

// route is the gRPC target and options that reach a Flight location:
// grpc://host:port over TCP, or libp2p://<peer ID> over a stream to the
// node's own peer (through this host, on whatever connection it holds:
// direct, hole-punched or relayed). A location that names another peer,
// or no location the hub knows, is refused for good.
func (f nodeFlight) route(node domain.NodeRef, loc string, relayed *atomic.Bool) (string, []grpc.DialOption, error) {
	if addr, ok := strings.CutPrefix(loc, grpcScheme); ok {
		return addr, nil, nil
	}
	id, ok := strings.CutPrefix(loc, libp2pScheme)
	switch {
	case !ok:
		return "", nil, invalidf("%s: unsupported Flight location %q", node.Name, loc)
	case id != node.PeerID:
		return "", nil, invalidf("%s: Flight location %q names a peer other than the node's own, %s", node.Name, loc, node.PeerID)
	case f.streams == nil:
		return "", nil, invalidf("%s: Flight location %q needs a libp2p host, which this worker lacks", node.Name, loc)
	}
	dial := func(ctx context.Context, _ string) (net.Conn, error) {
		c, err := f.streams.DialStream(ctx, node.PeerID, node.Addrs, p2p.FlightProtocol)
		if err == nil && p2p.StreamRelayed(c) {
			relayed.Store(true)
		}
		return c, err
	}
	// passthrough hands the target to the dialer unresolved: it is a peer
	// ID, not a host name.
	return "passthrough:///" + id, []grpc.DialOption{grpc.WithContextDialer(dial)}, nil
}

// invalidf is a non-retryable error of a node's answer the hub cannot use.
func invalidf(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), domain.ErrTypeInvalid, nil)
}

// read reads q from node over Flight (a read ticket from
// GetFlightEndpoint, then DoGet). done releases the reader and the client.
// A transfer a relay cut fails with an error naming the relay's limits.
func (f nodeFlight) read(ctx context.Context, node domain.NodeRef, q *wire.FlightQuery) (rd *flightReader, done func(), err error) {
	relayed := new(atomic.Bool)
	c, ticket, err := f.dial(ctx, node, q, false, relayed)
	if err != nil {
		return nil, nil, err
	}
	rd = &flightReader{node: node.Name, relayed: relayed}
	stream, err := c.DoGet(ctx, &flight.Ticket{Ticket: ticket})
	if err == nil {
		rd.Reader, err = flight.NewRecordReader(stream)
	}
	if err != nil {
		_ = c.Close()
		return nil, nil, relayCut(node.Name, relayed.Load(), fmt.Errorf("%s: read %s over Flight: %w", node.Name, q.GetTable(), err))
	}
	return rd, func() { rd.Release(); _ = c.Close() }, nil
}

// flightPut loads records of one schema into a node over Flight: a write
// ticket for a query (its Limit: the rows it may load) from
// GetFlightEndpoint, then DoPut. Write each record with write; finish ends
// the stream and returns the rows the node loaded; close releases the
// client (after finish, or on error).
type flightPut struct {
	node   string
	client flight.Client
	stream flight.FlightService_DoPutClient
	w      *flight.Writer
}

// put starts a load of q into node: records of schema, at most q.Limit rows.
func (f nodeFlight) put(ctx context.Context, node domain.NodeRef, q *wire.FlightQuery, schema *arrow.Schema) (*flightPut, error) {
	c, ticket, err := f.dial(ctx, node, q, true, new(atomic.Bool))
	if err != nil {
		return nil, err
	}
	stream, err := c.DoPut(ctx)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("%s: DoPut: %w", node.Name, err)
	}
	w := flight.NewRecordWriter(stream, ipc.WithSchema(schema))
	w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: ticket})
	return &flightPut{node: node.Name, client: c, stream: stream, w: w}, nil
}

func (p *flightPut) write(_ context.Context, rec arrow.RecordBatch) error {
	if err := p.w.Write(rec); err != nil {
		return fmt.Errorf("%s: send batch: %w", p.node, err)
	}
	return nil
}

func (p *flightPut) finish(context.Context) (int64, error) {
	_ = p.w.Close()
	_ = p.stream.CloseSend()
	res, err := p.stream.Recv()
	if err != nil {
		return 0, fmt.Errorf("%s: load: %w", p.node, err)
	}
	var put struct {
		Rows int64 `json:"rows"`
	}
	if err := json.Unmarshal(res.GetAppMetadata(), &put); err != nil {
		return 0, fmt.Errorf("%s: load answer: %w", p.node, err)
	}
	return put.Rows, nil
}

func (p *flightPut) close() { _ = p.client.Close() }

// uuidColumn returns the 16-byte values of a UUID column (the arrow.uuid
// extension, or its FixedSizeBinary(16) storage).
func uuidColumn(a arrow.Array) (*array.FixedSizeBinary, error) {
	if ext, ok := a.(array.ExtensionArray); ok {
		a = ext.Storage()
	}
	fsb, ok := a.(*array.FixedSizeBinary)
	if !ok || fsb.DataType().(*arrow.FixedSizeBinaryType).ByteWidth != 16 {
		return nil, fmt.Errorf("column of type %s is not a UUID", a.DataType())
	}
	return fsb, nil
}
