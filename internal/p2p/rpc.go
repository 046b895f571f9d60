package p2p

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// MaxMessageSize caps every request and response frame.
const MaxMessageSize = 8 << 20

// DefaultTimeout bounds a call whose context has no deadline, and every
// handler's work.
const DefaultTimeout = 30 * time.Second

// Error codes carried back from a handler to the caller.
const (
	CodeInvalid      = "invalid"      // the request failed validation
	CodeUnauthorized = "unauthorized" // the caller is not allowed
	CodeDrift        = "drift"        // the node's schema ledger disagrees with the hub's migrations
	CodeUnavailable  = "unavailable"  // a dependency (e.g. ClickHouse) is down; retry later
	CodeInternal     = "internal"     // anything else
)

// RemoteError is an error a handler returned, carried back to the caller.
type RemoteError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
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

type envelope struct {
	Error *RemoteError    `json:"error,omitempty"`
	Body  json.RawMessage `json:"body,omitempty"`
}

// Call sends req to peer p on protocol proto and decodes the answer into resp.
// The stream is reset on any error; a handler's error comes back as *RemoteError.
func Call(ctx context.Context, h host.Host, p peer.ID, proto protocol.ID, req, resp any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	s, err := h.NewStream(ctx, p, proto)
	if err != nil {
		return fmt.Errorf("open %s stream to %s: %w", proto, p, err)
	}
	// Closing the stream when ctx ends unblocks reads and writes at once.
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if err := s.SetDeadline(deadline); err != nil {
		_ = s.Reset()
		return fmt.Errorf("set deadline on %s stream: %w", proto, err)
	}
	werr := writeFrame(s, req)
	if werr == nil {
		werr = s.CloseWrite()
	}
	// A handler may answer (a refusal) without reading the request, so a
	// failed write still looks for an answer before reporting the failure.
	var env envelope
	if err := readFrame(bufio.NewReader(s), &env); err != nil {
		_ = s.Reset()
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("%s call to %s: %w", proto, p, ctx.Err())
		case werr != nil:
			return fmt.Errorf("send %s request to %s: %w", proto, p, werr)
		}
		return fmt.Errorf("read %s response from %s: %w", proto, p, err)
	}
	_ = s.Close()
	if env.Error != nil {
		return env.Error
	}
	if resp != nil {
		if err := json.Unmarshal(env.Body, resp); err != nil {
			return fmt.Errorf("decode %s response from %s: %w", proto, p, err)
		}
	}
	return nil
}

// HandlerFunc serves one request of type Req from peer from.
type HandlerFunc[Req, Resp any] func(ctx context.Context, from peer.ID, req *Req) (*Resp, error)

// Handle registers fn for proto on h. Each stream gets a deadline first, its
// request is size-capped and decoded, and the answer (or the error, as a
// RemoteError) is written back; the stream is Reset on any transport error and
// closed on success. allow, when not nil, is consulted before anything is read.
func Handle[Req, Resp any](h host.Host, proto protocol.ID, log *slog.Logger, allow func(peer.ID) bool, fn HandlerFunc[Req, Resp]) {
	h.SetStreamHandler(proto, func(s network.Stream) {
		from := s.Conn().RemotePeer()
		if err := s.SetDeadline(time.Now().Add(DefaultTimeout)); err != nil {
			_ = s.Reset()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
		defer cancel()
		var env envelope
		if allow != nil && !allow(from) {
			log.Warn("refused stream from unknown peer", "protocol", proto, "peer", from)
			env.Error = Errorf(CodeUnauthorized, "peer %s is not allowed to use %s", from, proto)
			if err := writeFrame(s, env); err != nil {
				_ = s.Reset()
				return
			}
			_ = s.Close()
			return
		}
		var req Req
		if err := readFrame(bufio.NewReader(s), &req); err != nil {
			log.Warn("bad request", "protocol", proto, "peer", from, "err", err)
			env.Error = Errorf(CodeInvalid, "bad request: %v", err)
		} else if resp, err := fn(ctx, from, &req); err != nil {
			var re *RemoteError
			if !errors.As(err, &re) {
				re = Errorf(CodeInternal, "%v", err)
			}
			env.Error = re
		} else if env.Body, err = json.Marshal(resp); err != nil {
			env.Error = Errorf(CodeInternal, "encode response: %v", err)
		}
		if err := writeFrame(s, env); err != nil {
			log.Warn("write response failed", "protocol", proto, "peer", from, "err", err)
			_ = s.Reset()
			return
		}
		_ = s.Close()
	})
}

// writeFrame writes v as JSON behind a uvarint length prefix.
func writeFrame(w io.Writer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode frame: %w", err)
	}
	if len(body) > MaxMessageSize {
		return fmt.Errorf("frame of %d bytes exceeds the %d-byte cap", len(body), MaxMessageSize)
	}
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(body)))
	if _, err := w.Write(append(hdr[:n:n], body...)); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// readFrame reads one length-prefixed JSON frame into v.
func readFrame(r *bufio.Reader, v any) error {
	size, err := binary.ReadUvarint(r)
	if err != nil {
		return fmt.Errorf("read frame length: %w", err)
	}
	if size > MaxMessageSize {
		return fmt.Errorf("frame of %d bytes exceeds the %d-byte cap", size, MaxMessageSize)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return fmt.Errorf("read frame body: %w", err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode frame: %w", err)
	}
	return nil
}
