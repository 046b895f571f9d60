package p2p

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/syndb/federation/internal/wire"
)

// MaxMessageSize is the largest frame any protocol accepts.
const MaxMessageSize = 8 << 20

// Error codes carried back from a handler to the caller.
const (
	CodeInvalid      = "invalid"      // the request failed validation
	CodeUnauthorized = "unauthorized" // the caller is not allowed
	CodeDrift        = "drift"        // the node's schema ledger disagrees with the hub's migrations
	CodeUnavailable  = "unavailable"  // a dependency (e.g. ClickHouse) is down; retry later
	CodeNotFound     = "not_found"    // the request names something that does not exist
	CodeInternal     = "internal"     // anything else
)

// RemoteError is an error a handler returned, carried back to the caller.
type RemoteError struct {
	Code    string
	Message string
}

func (e *RemoteError) Error() string { return fmt.Sprintf("remote %s: %s", e.Code, e.Message) }

// Errorf builds a RemoteError a handler returns to give the caller a code.
func Errorf(code, format string, args ...any) *RemoteError {
	return &RemoteError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// IsCode reports whether err is a RemoteError with the code.
func IsCode(err error, code string) bool {
	var re *RemoteError
	return errors.As(err, &re) && re.Code == code
}

// ErrUnreachable marks a call that could not open a stream to the peer.
var ErrUnreachable = errors.New("peer unreachable")

// validator is implemented by every request message (internal/wire).
type validator interface{ Validate() error }

// Call sends req to peer p on spec's protocol and decodes the answer into
// resp. The exchange ends by spec.Timeout or ctx, whichever is first; the
// stream is reset on any error; a handler's error comes back as *RemoteError.
func Call(ctx context.Context, h host.Host, p peer.ID, spec Spec, req, resp proto.Message) error {
	ctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	if v, ok := req.(validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("invalid %s request: %w", spec.ID, err)
		}
	}
	// A node reachable only through a relay is called over the limited
	// (relayed) connection; our messages fit its data and time limits.
	ctx = network.WithAllowLimitedConn(ctx, string(spec.ID))
	s, err := h.NewStream(ctx, p, spec.ID)
	if err != nil {
		return fmt.Errorf("%w: open %s stream to %s: %w", ErrUnreachable, spec.ID, p, err)
	}
	// Resetting the stream when ctx ends unblocks reads and writes at once.
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if err := s.SetDeadline(deadline); err != nil {
		_ = s.Reset()
		return fmt.Errorf("set deadline on %s stream: %w", spec.ID, err)
	}
	werr := writeFrame(s, req, spec.MaxRequest)
	if werr == nil {
		werr = s.CloseWrite()
	}
	// A handler may answer (a refusal) without reading the request, so a
	// failed write still looks for an answer before reporting the failure.
	var reply wire.Reply
	if err := readFrame(bufio.NewReader(s), &reply, spec.MaxResponse+64); err != nil {
		_ = s.Reset()
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("%s call to %s: %w", spec.ID, p, ctx.Err())
		case werr != nil:
			return fmt.Errorf("send %s request to %s: %w", spec.ID, p, werr)
		}
		return fmt.Errorf("read %s response from %s: %w", spec.ID, p, err)
	}
	_ = s.Close()
	if e := reply.GetError(); e != nil {
		return &RemoteError{Code: e.GetCode(), Message: e.GetMessage()}
	}
	if err := proto.Unmarshal(reply.GetBody(), resp); err != nil {
		return fmt.Errorf("decode %s response from %s: %w", spec.ID, p, err)
	}
	return nil
}

// HandlerFunc serves one validated request from peer from.
type HandlerFunc[Req, Resp proto.Message] func(ctx context.Context, from peer.ID, req Req) (Resp, error)

// Guard decides which connections a handler serves. A nil Guard serves
// every peer the host admits.
type Guard interface {
	// Admit is asked before anything is read. An error refuses the stream
	// and is the caller's answer: a *RemoteError keeps its code, any other
	// error is unauthorized.
	Admit(c network.Conn) error
	// Refused is told, once the answer is written, that the exchange
	// ended in a refusal (Admit's or the handler's error).
	Refused(c network.Conn)
}

// AllowFunc is a Guard that only admits: fn returns nil to serve a
// connection.
type AllowFunc func(c network.Conn) error

// Admit calls fn.
func (fn AllowFunc) Admit(c network.Conn) error { return fn(c) }

// Refused does nothing.
func (AllowFunc) Refused(network.Conn) {}

// Handle registers fn for spec's protocol on h. Each stream gets its
// deadline first; guard, when not nil, is consulted before anything is
// read; the request is size-capped, decoded and validated before fn sees
// it; the answer (or the error, as a typed Error) is written back. The
// stream is Reset on any transport error and closed on success.
func Handle[Req, Resp proto.Message](h host.Host, spec Spec, log *slog.Logger, guard Guard, fn HandlerFunc[Req, Resp]) {
	var zero Req
	newReq := func() Req { return zero.ProtoReflect().Type().New().Interface().(Req) }
	h.SetStreamHandler(spec.ID, func(s network.Stream) {
		from := s.Conn().RemotePeer()
		if err := s.SetDeadline(time.Now().Add(spec.Timeout)); err != nil {
			_ = s.Reset()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), spec.Timeout)
		defer cancel()
		reply := serve(ctx, s, spec, log, guard, newReq, fn)
		if err := writeFrame(s, reply, spec.MaxResponse+64); err != nil {
			log.Warn("write response failed", "protocol", spec.ID, "peer", from, "err", err)
			_ = s.Reset()
			return
		}
		_ = s.Close()
		if reply.GetError() != nil && guard != nil {
			guard.Refused(s.Conn())
		}
	})
}

func serve[Req, Resp proto.Message](ctx context.Context, s network.Stream, spec Spec, log *slog.Logger,
	guard Guard, newReq func() Req, fn HandlerFunc[Req, Resp],
) *wire.Reply {
	from := s.Conn().RemotePeer()
	fail := func(e *RemoteError) *wire.Reply {
		return &wire.Reply{Error: &wire.Error{Code: e.Code, Message: e.Message}}
	}
	if guard != nil {
		if err := guard.Admit(s.Conn()); err != nil {
			var re *RemoteError
			if !errors.As(err, &re) {
				re = Errorf(CodeUnauthorized, "%v", err)
			}
			return fail(re)
		}
	}
	req := newReq()
	if err := readFrame(bufio.NewReader(s), req, spec.MaxRequest); err != nil {
		log.Warn("bad request", "protocol", spec.ID, "peer", from, "err", err)
		return fail(Errorf(CodeInvalid, "bad request: %v", err))
	}
	if v, ok := any(req).(validator); ok {
		if err := v.Validate(); err != nil {
			log.Warn("invalid request", "protocol", spec.ID, "peer", from, "err", err)
			return fail(Errorf(CodeInvalid, "%v", err))
		}
	}
	resp, err := fn(ctx, from, req)
	if err != nil {
		var re *RemoteError
		if !errors.As(err, &re) {
			re = Errorf(CodeInternal, "%v", err)
		}
		return fail(re)
	}
	body, err := proto.Marshal(resp)
	if err != nil {
		return fail(Errorf(CodeInternal, "encode response: %v", err))
	}
	if len(body) > spec.MaxResponse {
		return fail(Errorf(CodeInternal, "response of %d bytes exceeds the %d-byte cap of %s", len(body), spec.MaxResponse, spec.ID))
	}
	return &wire.Reply{Body: body}
}

// writeFrame writes m behind a uvarint length prefix, refusing more than
// limit bytes.
func writeFrame(w io.Writer, m proto.Message, limit int) error {
	body, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode frame: %w", err)
	}
	if len(body) > limit {
		return fmt.Errorf("frame of %d bytes exceeds the %d-byte cap", len(body), limit)
	}
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(body)))
	if _, err := w.Write(append(hdr[:n:n], body...)); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// readFrame reads one length-prefixed frame of at most limit bytes into m.
func readFrame(r *bufio.Reader, m proto.Message, limit int) error {
	size, err := binary.ReadUvarint(r)
	if err != nil {
		return fmt.Errorf("read frame length: %w", err)
	}
	if size > uint64(limit) {
		return fmt.Errorf("frame of %d bytes exceeds the %d-byte cap", size, limit)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return fmt.Errorf("read frame body: %w", err)
	}
	if err := proto.Unmarshal(body, m); err != nil {
		return fmt.Errorf("decode frame: %w", err)
	}
	return nil
}
