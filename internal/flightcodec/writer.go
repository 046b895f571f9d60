package flightcodec

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// minShared is the smallest body part a frame sends from the Arrow buffer
// itself; smaller parts (validity bitmaps, padding) are copied into the
// frame, which costs less than tracking them.
const minShared = 4 << 10

// Stream is where a Writer sends its messages: a Flight server's DoGet or
// DoExchange stream, whose codec is this package's (ServerOption).
type Stream interface {
	SendMsg(m any) error
	Context() context.Context
}

var _ Stream = grpc.ServerStream(nil)

// NewWriter returns an Arrow IPC stream writer that sends each message as
// a FlightData on stream, its body straight from the record batch's
// buffers. Write returns once gRPC has written the batch, so the caller
// may release or reuse the batch's memory as soon as it returns. If the
// stream ends first, Write returns its error at once and gRPC may still
// read the batch for a while: the batch's memory must then be left as it
// is (Go memory, which the garbage collector keeps while gRPC holds it,
// not memory freed by hand). The options are ipc.NewWriter's (the schema
// at least).
func NewWriter(stream Stream, opts ...ipc.Option) *ipc.Writer {
	return ipc.NewWriterWithPayloadWriter(&payloadWriter{stream: stream}, opts...)
}

// payloadWriter sends IPC payloads as frames.
type payloadWriter struct{ stream Stream }

func (*payloadWriter) Start() error { return nil }
func (*payloadWriter) Close() error { return nil }

// WritePayload sends p and waits until gRPC is done with its buffers, or
// the stream ends.
func (w *payloadWriter) WritePayload(p ipc.Payload) error {
	f := newFrame(p)
	err := w.stream.SendMsg(f)
	f.release() // the sender's own reference
	if err != nil {
		return fmt.Errorf("send flight data: %w", err)
	}
	select {
	case <-f.done:
		return nil
	case <-w.stream.Context().Done():
		return fmt.Errorf("send flight data: %w", context.Cause(w.stream.Context()))
	}
}

// frame is one FlightData message: its encoded fields up to the body, and
// the body's parts, the large ones still in the payload's Arrow buffers.
// pending counts the references to them: the sender's own, and one a
// shared part that gRPC has not freed yet. done is closed when none is
// left.
type frame struct {
	parts   [][]byte
	shared  []bool // parts[i] is a payload buffer, not the frame's own bytes
	pending atomic.Int32
	done    chan struct{}
}

// newFrame encodes p's metadata and lays out its body.
func newFrame(p ipc.Payload) *frame {
	f := &frame{done: make(chan struct{})}
	f.pending.Store(1)
	var body bodyParts
	_ = p.SerializeBody(&body) // bodyParts.Write never fails
	meta := p.Meta()
	var head []byte
	if meta != nil {
		head = protowire.AppendTag(head, fieldDataHeader, protowire.BytesType)
		head = protowire.AppendBytes(head, meta.Bytes())
		meta.Release()
	}
	if body.size > 0 {
		head = protowire.AppendTag(head, fieldDataBody, protowire.BytesType)
		head = protowire.AppendVarint(head, uint64(body.size))
	}
	f.add(head, false)
	for _, b := range body.parts {
		// mem.NewBuffer pools (and so frees) only buffers above gRPC's
		// threshold.
		f.add(b, len(b) >= minShared && !mem.IsBelowBufferPoolingThreshold(cap(b)))
	}
	return f
}

// add appends b to the frame: as its own part when shared, else copied
// onto the last part the frame owns.
func (f *frame) add(b []byte, shared bool) {
	if !shared && len(f.parts) > 0 && !f.shared[len(f.parts)-1] {
		f.parts[len(f.parts)-1] = append(f.parts[len(f.parts)-1], b...)
		return
	}
	if !shared {
		b = append([]byte(nil), b...)
	}
	f.parts = append(f.parts, b)
	f.shared = append(f.shared, shared)
}

// slice is the frame as gRPC sends it. A shared part is a buffer whose
// pool is the frame, so gRPC's last reference to it tells the frame.
func (f *frame) slice() mem.BufferSlice {
	s := make(mem.BufferSlice, len(f.parts))
	for i, b := range f.parts {
		if f.shared[i] {
			f.pending.Add(1)
			s[i] = mem.NewBuffer(&b, f)
		} else {
			s[i] = mem.SliceBuffer(b)
		}
	}
	return s
}

// Get is never called for a frame's buffers; it allocates, as a pool may.
func (*frame) Get(length int) *[]byte {
	b := make([]byte, length)
	return &b
}

// Put is gRPC freeing a shared part.
func (f *frame) Put(*[]byte) { f.release() }

func (f *frame) release() {
	if f.pending.Add(-1) == 0 {
		close(f.done)
	}
}

// bodyParts collects the slices an IPC payload's body is written as,
// without copying them.
type bodyParts struct {
	parts [][]byte
	size  int
}

// Write keeps p, which stays valid while the payload is held.
func (b *bodyParts) Write(p []byte) (int, error) {
	b.parts = append(b.parts, p)
	b.size += len(p)
	return len(p), nil
}
