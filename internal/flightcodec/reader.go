package flightcodec

import (
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
)

// RecvStream is where a Reader receives its messages: a Flight client's
// DoGet or DoExchange stream whose codec is this package's (DialOption).
type RecvStream interface {
	RecvMsg(m any) error
}

var _ RecvStream = grpc.ClientStream(nil)

// Reader is an Arrow IPC stream reader of the FlightData messages of a
// stream. A batch's buffers alias the message it came in, and a large
// message is received into a buffer this package takes back, for the
// next message of any Reader, once the batch and every array that shares
// its memory are released. So, as Arrow's memory model has it, what a
// batch's values point into (a String's or Binary's Value) must not be
// kept past the batch's release: copy what is to outlive it. A
// dictionary's message stays held until the dictionary is replaced or the
// Reader released. A message whose body is shorter than its header says
// ends the stream with an error.
type Reader struct {
	*ipc.Reader
	msgs *messages
}

// NewReader returns a Reader of the messages of stream, whose codec must
// be this package's. The options are ipc.NewReader's.
func NewReader(stream RecvStream, opts ...ipc.Option) (*Reader, error) {
	m := &messages{stream: stream}
	m.refs.Store(1)
	// The IPC reader owns m from here on, and releases it with itself,
	// on an error too.
	r, err := ipc.NewReaderFromMessageReader(m, opts...)
	if err != nil {
		return nil, fmt.Errorf("read flight stream: %w", err)
	}
	return &Reader{Reader: r, msgs: m}, nil
}

// Bytes is the size of the IPC messages read so far: their metadata and
// bodies, as the stream carried them.
func (r *Reader) Bytes() int64 { return r.msgs.bytes.Load() }

// messages is the ipc.MessageReader of a Reader. Each message holds its
// receive buffer until the message is released, which the IPC reader
// leaves to the next call of Message, and the arrays sliced from its body
// hold it after that.
type messages struct {
	stream RecvStream
	refs   atomic.Int64
	cur    *ipc.Message
	bytes  atomic.Int64
}

// Message receives the next FlightData and returns it as an IPC message.
func (m *messages) Message() (*ipc.Message, error) {
	m.drop()
	var d recvData
	if err := m.stream.RecvMsg(&d); err != nil {
		return nil, err // io.EOF ends the stream
	}
	m.bytes.Add(int64(len(d.fd.DataHeader) + len(d.fd.DataBody)))
	body := memory.NewBufferBytes(d.fd.DataBody)
	if d.buf != nil {
		body = memory.NewBufferWithAllocator(d.fd.DataBody, d.buf)
	}
	m.cur = ipc.NewMessage(memory.NewBufferBytes(d.fd.DataHeader), body)
	body.Release() // the message's reference is the one left
	// arrow-go slices a body by its header's offsets without checking
	// them against it: a body shorter than its header says is refused.
	if want := m.cur.BodyLen(); want > int64(len(d.fd.DataBody)) {
		return nil, fmt.Errorf("flight data: a body of %d bytes, but its header says %d", len(d.fd.DataBody), want)
	}
	return m.cur, nil
}

func (m *messages) drop() {
	if m.cur != nil {
		m.cur.Release()
		m.cur = nil
	}
}

// Retain adds a reference to m.
func (m *messages) Retain() { m.refs.Add(1) }

// Release drops a reference to m, and with the last the current message.
func (m *messages) Release() {
	if m.refs.Add(-1) == 0 {
		m.drop()
	}
}

// recvData is a FlightData as a Reader receives it: fd's fields alias buf
// when the message was large enough to pool, or a buffer of its own.
type recvData struct {
	fd  flight.FlightData
	buf *recvBuffer
}

// unmarshal decodes data into d, copied into a pooled buffer when large.
func (d *recvData) unmarshal(data mem.BufferSlice) error {
	n := data.Len()
	if n < 1<<minRecvClass {
		return unmarshalFlightData(data.Materialize(), &d.fd)
	}
	b := getRecvBuffer(n)
	// Capped at n: what the message's fields alias ends where it does,
	// never in what earlier messages left in the buffer.
	msg := b.b[:n:n]
	data.CopyTo(msg)
	if err := unmarshalFlightData(msg, &d.fd); err != nil {
		b.Free(nil)
		return err
	}
	d.buf = b
	return nil
}

// Received messages from 2^minRecvClass to 2^maxRecvClass bytes go into
// buffers of the next power of two, pooled by size; larger ones into
// buffers of their own size that are left to the garbage collector.
const (
	minRecvClass = 16 // 64 KiB
	maxRecvClass = 27 // 128 MiB
)

var recvPools [maxRecvClass + 1]sync.Pool

// recvBuffer is a receive buffer, and the memory.Allocator of the body
// that aliases it: the body's release frees it back to its pool.
type recvBuffer struct {
	b     []byte
	class int // its pool, or 0 for none
}

func getRecvBuffer(n int) *recvBuffer {
	c := max(bits.Len(uint(n-1)), minRecvClass)
	if c > maxRecvClass {
		return &recvBuffer{b: make([]byte, n)}
	}
	if b, ok := recvPools[c].Get().(*recvBuffer); ok {
		return b
	}
	return &recvBuffer{b: make([]byte, 1<<c), class: c}
}

// Allocate is never called for an IPC body; it allocates Go memory.
func (*recvBuffer) Allocate(size int) []byte { return make([]byte, size) }

// Reallocate is never called for an IPC body either. If it were, b would
// no longer be the body's memory, though arrays sliced before might still
// point into it, so it leaves its pool for good.
func (b *recvBuffer) Reallocate(size int, old []byte) []byte {
	b.class = 0
	out := make([]byte, size)
	copy(out, old)
	return out
}

// Free is the body's release: b goes back to its pool.
func (b *recvBuffer) Free([]byte) {
	if b.class != 0 {
		recvPools[b.class].Put(b)
	}
}
