package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"github.com/syndb/federation/internal/flightcodec"
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
	// grpcScheme is a Flight server at a TCP host:port, in plaintext.
	grpcScheme = "grpc://"
	// grpcsScheme is a Flight server at a TCP host:port over TLS, with
	// the certificate whose SHA-256 the node registered (NodeRef's pin).
	grpcsScheme = "grpcs://"
	// libp2pScheme is the node's own Flight server over libp2p, on
	// p2p.FlightProtocol: libp2p://<the node's peer ID>.
	libp2pScheme = "libp2p://"
)

// dial asks node for a ticket (GetFlightEndpoint) and connects to its
// Flight server, over libp2p or TCP as the location says. The ticket is
// good for one stream, started within its lifetime (a minute), from this
// host: over libp2p, from its peer; over TCP, from the address this host's
// libp2p connection to the node comes from. Each stream asks for its own,
// right before it starts. refused turns an error of the client's calls
// into a refusal for good when the server's certificate did not match its
// pin. relayed is set once a stream the client opened runs over a relayed
// connection.
func (f nodeFlight) dial(ctx context.Context, node domain.NodeRef, q *wire.FlightQuery, write bool, relayed *atomic.Bool) (c flight.Client, ticket []byte,
	refused func(error) error, err error) {
	var ep wire.GetFlightEndpointResponse
	req := &wire.GetFlightEndpointRequest{Query: q, Write: write}
	if err := f.nodes.Call(ctx, node.PeerID, node.Addrs, p2p.FlightEndpoint, req, &ep); err != nil {
		return nil, nil, nil, classify(fmt.Errorf("%s: %w", node.Name, err))
	}
	r, err := f.route(node, ep.GetLocation(), relayed)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err = flight.NewClientWithMiddleware(r.target, nil, nil, append(r.opts, flightcodec.DialOption())...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: flight client: %w", node.Name, err)
	}
	return c, ep.GetTicket(), r.refused, nil
}

// flightRoute is how to reach a Flight location: the gRPC target, its dial
// options (transport credentials included), and refused, which makes an
// error of a call over it a refusal for good when the TLS handshake found
// a certificate other than the pinned one (and returns others as they are).
type flightRoute struct {
	target  string
	opts    []grpc.DialOption
	refused func(error) error
}

// route is how to reach a Flight location: grpc://host:port over TCP in
// plaintext, grpcs://host:port over TLS with the node's registered
// certificate and no other, or libp2p://<peer ID> over a stream to the
// node's own peer (through this host, on whatever connection it holds:
// direct, hole-punched or relayed). A location that names another peer,
// a plaintext location of a node that registered a certificate, a TLS one
// of a node that registered none, or no location the hub knows, is refused
// for good.
func (f nodeFlight) route(node domain.NodeRef, loc string, relayed *atomic.Bool) (flightRoute, error) {
	plain := grpc.WithTransportCredentials(insecure.NewCredentials())
	if addr, ok := strings.CutPrefix(loc, grpcsScheme); ok {
		if err := registeredAddr(node, loc, addr); err != nil {
			return flightRoute{}, err
		}
		return pinnedRoute(node, addr)
	}
	if addr, ok := strings.CutPrefix(loc, grpcScheme); ok {
		if err := registeredAddr(node, loc, addr); err != nil {
			return flightRoute{}, err
		}
		if node.FlightCertSHA256 != "" {
			return flightRoute{}, invalidf("%s: Flight location %q is plaintext, but the node registered a TLS certificate (SHA-256 %s)",
				node.Name, loc, node.FlightCertSHA256)
		}
		return flightRoute{target: addr, opts: []grpc.DialOption{plain}, refused: asIs}, nil
	}
	id, ok := strings.CutPrefix(loc, libp2pScheme)
	switch {
	case !ok:
		return flightRoute{}, invalidf("%s: unsupported Flight location %q", node.Name, loc)
	case id != node.PeerID:
		return flightRoute{}, invalidf("%s: Flight location %q names a peer other than the node's own, %s", node.Name, loc, node.PeerID)
	case f.streams == nil:
		return flightRoute{}, invalidf("%s: Flight location %q needs a libp2p host, which this worker lacks", node.Name, loc)
	}
	dial := func(ctx context.Context, _ string) (net.Conn, error) {
		c, err := f.streams.DialStream(ctx, node.PeerID, node.Addrs, p2p.FlightProtocol)
		if err == nil && p2p.StreamRelayed(c) {
			relayed.Store(true)
		}
		return c, err
	}
	// passthrough hands the target to the dialer unresolved: it is a peer
	// ID, not a host name. libp2p secures the stream itself.
	return flightRoute{target: "passthrough:///" + id, opts: []grpc.DialOption{grpc.WithContextDialer(dial), plain}, refused: asIs}, nil
}

// registeredAddr refuses a TCP Flight location at an address other than
// the one the node registered, which the registrar checked against the
// node's connection: a node cannot make the hub dial a host of its choice.
// A node on the libp2p data plane registers none, so it has no TCP route.
func registeredAddr(node domain.NodeRef, loc, addr string) error {
	switch {
	case node.FlightAddr == "":
		return invalidf("%s: Flight location %q is a TCP address, but the node registered none (its data plane is libp2p)", node.Name, loc)
	case addr != node.FlightAddr:
		return invalidf("%s: Flight location %q is not the address the node registered, %s", node.Name, loc, node.FlightAddr)
	}
	return nil
}

func asIs(err error) error { return err }

// invalidf is a non-retryable error of a node's answer the hub cannot use.
func invalidf(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), domain.ErrTypeInvalid, nil)
}

// read reads q from node over Flight (a read ticket from
// GetFlightEndpoint, then DoGet). done releases the reader and the client.
// A transfer a relay cut fails with an error naming the relay's limits.
func (f nodeFlight) read(ctx context.Context, node domain.NodeRef, q *wire.FlightQuery) (rd *flightReader, done func(), err error) {
	relayed := new(atomic.Bool)
	c, ticket, refused, err := f.dial(ctx, node, q, false, relayed)
	if err != nil {
		return nil, nil, err
	}
	rd = &flightReader{node: node.Name, relayed: relayed}
	stream, err := c.DoGet(ctx, &flight.Ticket{Ticket: ticket})
	if err == nil {
		rd.Reader, err = flightcodec.NewReader(stream)
	}
	if err != nil {
		_ = c.Close()
		return nil, nil, refused(relayCut(node.Name, relayed.Load(), fmt.Errorf("%s: read %s over Flight: %w", node.Name, q.GetTable(), err)))
	}
	return rd, func() { rd.Release(); _ = c.Close() }, nil
}

// flightPut loads records of one schema into a node over Flight: a write
// ticket for a query (its Limit: the rows it may load) from
// GetFlightEndpoint, then DoPut. Write each record with write; finish ends
// the stream and returns the rows the node loaded; close releases the
// client (after finish, or on error).
type flightPut struct {
	node    string
	client  flight.Client
	stream  flight.FlightService_DoPutClient
	w       *flight.Writer
	relayed *atomic.Bool
}

// put starts a load of q into node: records of schema, at most q.Limit rows.
func (f nodeFlight) put(ctx context.Context, node domain.NodeRef, q *wire.FlightQuery, schema *arrow.Schema) (*flightPut, error) {
	relayed := new(atomic.Bool)
	c, ticket, refused, err := f.dial(ctx, node, q, true, relayed)
	if err != nil {
		return nil, err
	}
	stream, err := c.DoPut(ctx)
	if err != nil {
		_ = c.Close()
		return nil, refused(relayCut(node.Name, relayed.Load(), fmt.Errorf("%s: DoPut: %w", node.Name, err)))
	}
	w := flight.NewRecordWriter(stream, ipc.WithSchema(schema))
	w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: ticket})
	return &flightPut{node: node.Name, client: c, stream: stream, w: w, relayed: relayed}, nil
}

// write sends rec. A send that fails because the stream ended (io.EOF)
// reports how it ended, which only the stream's receive side knows (the
// node's refusal, or the transport breaking under a relay's limits).
func (p *flightPut) write(_ context.Context, rec arrow.RecordBatch) error {
	err := p.w.Write(rec)
	if err == nil {
		return nil
	}
	if errors.Is(err, io.EOF) {
		if _, rerr := p.stream.Recv(); rerr != nil && !errors.Is(rerr, io.EOF) {
			err = rerr
		}
	}
	return relayCut(p.node, p.relayed.Load(), fmt.Errorf("%s: send batch: %w", p.node, err))
}

func (p *flightPut) finish(context.Context) (int64, error) {
	_ = p.w.Close()
	_ = p.stream.CloseSend()
	res, err := p.stream.Recv()
	if err != nil {
		return 0, relayCut(p.node, p.relayed.Load(), fmt.Errorf("%s: load: %w", p.node, err))
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
