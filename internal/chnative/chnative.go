// Package chnative runs a SELECT on ClickHouse over the native protocol and
// hands back its result block by block, decoded into ch-go's typed column
// slices (github.com/ClickHouse/ch-go/proto).
//
// ch-go's own client cannot query ClickHouse 18.16: below protocol revision
// 54420 it leaves the client info out of the query packet, which 18.16
// reads from revision 54032 on, so the server fails with "Unknown setting".
// This package speaks protocol revision 54412 (18.16's) to every server,
// writing the query packet itself and decoding everything else with ch-go.
// It sends no settings and no compression.
package chnative

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/syndb/federation/internal/config"
)

// Revision is the protocol revision this package speaks: ClickHouse
// 18.16's. A newer server speaks it too.
const Revision = 54412

// Exception is an error the server sent.
type Exception struct {
	Code    int
	Name    string
	Message string
}

func (e *Exception) Error() string {
	return fmt.Sprintf("clickhouse exception %d (%s): %s", e.Code, e.Name, e.Message)
}

// readBuffer is the connection's read buffer: at least ch-go's own (128
// KiB), so that proto.NewReader reads through it rather than wrapping it.
const readBuffer = 256 << 10

// Rows is the result of a running query. It is not safe for concurrent use.
type Rows struct {
	conn    net.Conn
	wire    *bufio.Reader
	r       *proto.Reader
	version int
	stop    func() bool
	ctx     context.Context
	once    sync.Once
	done    bool
	err     error
}

// Query connects to the server in c, runs sql there and returns its rows.
// Cancelling ctx cuts the connection, which stops the query. The caller
// closes the rows.
func Query(ctx context.Context, c config.ClickHouse, sql string) (*Rows, error) {
	conn, err := new(net.Dialer).DialContext(ctx, "tcp", c.Addr)
	if err != nil {
		return nil, fmt.Errorf("dial clickhouse %s: %w", c.Addr, err)
	}
	wire := bufio.NewReaderSize(conn, readBuffer)
	rows := &Rows{conn: conn, wire: wire, r: proto.NewReader(wire), ctx: ctx}
	rows.stop = context.AfterFunc(ctx, func() { _ = conn.Close() })
	if err := rows.start(c, sql); err != nil {
		_ = rows.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("query clickhouse %s: %w", c.Addr, ctx.Err())
		}
		return nil, fmt.Errorf("query clickhouse %s: %w", c.Addr, err)
	}
	return rows, nil
}

// start says hello and sends the query with its (empty) external data.
func (r *Rows) start(c config.ClickHouse, sql string) error {
	w := bufio.NewWriter(r.conn)
	var b proto.Buffer
	proto.ClientHello{Name: "syndb", Major: 1, ProtocolVersion: Revision,
		Database: c.Database, User: c.User, Password: c.Password}.Encode(&b)
	if _, err := w.Write(b.Buf); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	code, err := r.r.UVarInt()
	if err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	switch proto.ServerCode(code) {
	case proto.ServerCodeHello:
	case proto.ServerCodeException:
		return r.exception()
	default:
		return fmt.Errorf("server sent packet %d instead of hello", code)
	}
	var hello proto.ServerHello
	if err := hello.DecodeAware(r.r, Revision); err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	r.version = min(Revision, hello.Revision)

	b.Reset()
	proto.ClientCodeQuery.Encode(&b)
	b.PutString("") // query id: the server picks one
	// 18.16 reads the client info from revision 54032 on.
	// 18.16 parses the initial address as host:port whatever the query kind.
	proto.ClientInfo{ProtocolVersion: Revision, Major: 1, Interface: proto.InterfaceTCP,
		Query: proto.ClientQueryInitial, ClientName: "syndb", InitialAddress: r.conn.LocalAddr().String(),
		InitialUser: c.User}.EncodeAware(&b, r.version)
	b.PutString("") // end of settings
	proto.StageComplete.Encode(&b)
	proto.CompressionDisabled.Encode(&b)
	b.PutString(sql)
	// No external tables: an empty data block ends them.
	proto.ClientCodeData.Encode(&b)
	proto.ClientData{}.EncodeAware(&b, r.version)
	proto.Block{}.EncodeAware(&b, r.version)
	if _, err := w.Write(b.Buf); err != nil {
		return fmt.Errorf("send query: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("send query: %w", err)
	}
	return nil
}

func (r *Rows) exception() error {
	var ex proto.Exception
	if err := ex.DecodeAware(r.r, r.version); err != nil {
		return fmt.Errorf("read exception: %w", err)
	}
	return &Exception{Code: int(ex.Code), Name: ex.Name, Message: ex.Message}
}

// Next decodes the next block that has rows into target and returns its
// row count; 0 at the end of the result or on error (see Err).
func (r *Rows) Next(target proto.Result) int {
	for !r.done {
		n, err := r.packet(target)
		if err != nil {
			r.done = true
			if errors.Is(err, errEnd) {
				break
			}
			if r.ctx.Err() != nil {
				err = fmt.Errorf("%w (%w)", r.ctx.Err(), err)
			}
			r.err = err
			break
		}
		if n > 0 {
			return n
		}
	}
	return 0
}

var errEnd = errors.New("end of stream")

// packet reads one packet: the rows of a data block, 0 for any other.
func (r *Rows) packet(target proto.Result) (int, error) {
	code, err := r.r.UVarInt()
	if err != nil {
		return 0, fmt.Errorf("read packet: %w", err)
	}
	switch c := proto.ServerCode(code); c {
	case proto.ServerCodeData:
		var data proto.ClientData // the server's data packet starts alike
		if err := data.DecodeAware(r.r, r.version); err != nil {
			return 0, fmt.Errorf("read data packet: %w", err)
		}
		var block proto.Block
		if err := block.DecodeBlock(r.r, r.version, target); err != nil {
			return 0, fmt.Errorf("decode block: %w", err)
		}
		return block.Rows, nil
	case proto.ServerCodeException:
		return 0, r.exception()
	case proto.ServerCodeProgress:
		var p proto.Progress
		if err := p.DecodeAware(r.r, r.version); err != nil {
			return 0, fmt.Errorf("read progress: %w", err)
		}
		return 0, nil
	case proto.ServerCodeProfile:
		var p proto.Profile
		if err := p.DecodeAware(r.r, r.version); err != nil {
			return 0, fmt.Errorf("read profile: %w", err)
		}
		return 0, nil
	case proto.ServerCodeEndOfStream:
		return 0, errEnd
	default:
		return 0, fmt.Errorf("unexpected packet %s from the server", c)
	}
}

// Wire is the buffered connection Next decodes blocks from. Nothing else
// buffers between it and ch-go's reader (compression is off), so a
// column's DecodeColumn, called from Next, may read its bytes from Wire
// directly.
func (r *Rows) Wire() *bufio.Reader { return r.wire }

// Err is the error that ended the result, if any.
func (r *Rows) Err() error { return r.err }

// Close closes the connection; a query still running stops. Unlike Next,
// it may be called while another goroutine is in Next, which then fails.
func (r *Rows) Close() error {
	var err error
	r.once.Do(func() {
		r.stop()
		if cerr := r.conn.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = fmt.Errorf("close clickhouse connection: %w", cerr)
		}
	})
	return err
}
