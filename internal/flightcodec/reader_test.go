package flightcodec

import (
	"bytes"
	"io"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// TestReaderReusesReleasedBuffers: a Reader whose batches are released as
// it goes receives the stream into a few buffers, reused, and yet every
// batch equals the one sent, and a batch held on to is left as it was
// while later messages come in. Its byte count equals that of arrow-go's
// reader of the same stream.
//
// Not parallel: the pool is the process's, and other tests' Readers would
// take and keep its buffers.
func TestReaderReusesReleasedBuffers(t *testing.T) {
	// 40,000 rows: every message is large enough to be pooled.
	batches := testBatches(t, 4, 40_000)
	const repeat = 25
	addr := serve(t, &server{batches: batches, repeat: repeat, ours: true})

	rdr := doGet(t, addr, readerClient).(*Reader)
	defer rdr.Release()
	bodies := map[uintptr]bool{}
	var held []arrow.RecordBatch
	t.Cleanup(func() {
		for _, r := range held {
			r.Release()
		}
	})
	n := 0
	for rdr.Next() {
		r := rdr.RecordBatch()
		require.True(t, array.RecordEqual(batches[n%len(batches)], r), "batch %d differs", n)
		bodies[uintptr(unsafe.Pointer(unsafe.SliceData(r.Column(0).Data().Buffers()[1].Bytes())))] = true
		if n%7 == 3 {
			r.Retain()
			held = append(held, r)
		}
		n++
	}
	require.NoError(t, rdr.Err())
	require.Equal(t, len(batches)*repeat, n)
	// Each held batch keeps its buffer; the others share a few (about one a
	// P: a buffer freed on one may be missed by a receive on another).
	require.LessOrEqual(t, len(bodies), len(held)+n/3, "receive buffers for %d batches", n)
	t.Logf("%d receive buffers for %d batches, %d of them held", len(bodies), n, len(held))
	for i, r := range held {
		k := (7*i + 3) % len(batches)
		require.True(t, array.RecordEqual(batches[k], r), "held batch %d was overwritten", 7*i+3)
	}

	// arrow-go's reader of the same stream, counting what it receives.
	cs := &countingStream{FlightService_DoGetClient: doGetStream(t, addr, plainClient)}
	plain, err := flight.NewRecordReader(cs)
	require.NoError(t, err)
	for plain.Next() {
	}
	require.NoError(t, plain.Err())
	plain.Release()
	require.Equal(t, cs.bytes, rdr.Bytes())
}

// countingStream counts the IPC bytes arrow-go's reader receives.
type countingStream struct {
	flight.FlightService_DoGetClient
	bytes int64
}

func (c *countingStream) Recv() (*flight.FlightData, error) {
	fd, err := c.FlightService_DoGetClient.Recv()
	if fd != nil {
		c.bytes += int64(len(fd.DataHeader) + len(fd.DataBody))
	}
	return fd, err
}

// TestReaderNeedsTheCodec: a Reader over a stream of gRPC's own codec
// fails with an error, not a panic.
func TestReaderNeedsTheCodec(t *testing.T) {
	t.Parallel()
	addr := serve(t, &server{batches: testBatches(t, 1, 10), ours: true})
	_, err := NewReader(doGetStream(t, addr, plainClient))
	require.Error(t, err)
	t.Log(err)
}

// sentStream collects what a Flight record writer sends.
type sentStream struct{ msgs []*flight.FlightData }

func (s *sentStream) Send(fd *flight.FlightData) error {
	s.msgs = append(s.msgs, proto.CloneOf(fd))
	return nil
}

// fedStream hands a Reader the encoded messages it holds, as gRPC would.
type fedStream struct{ msgs [][]byte }

func (s *fedStream) RecvMsg(m any) error {
	if len(s.msgs) == 0 {
		return io.EOF
	}
	b := s.msgs[0]
	s.msgs = s.msgs[1:]
	return newCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, m)
}

// uuidBatch is one batch of rows 16-byte values, each byte fill.
func uuidBatch(rows int, fill byte) (*arrow.Schema, arrow.RecordBatch) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: &arrow.FixedSizeBinaryType{ByteWidth: 16}}}, nil)
	b := array.NewFixedSizeBinaryBuilder(memory.DefaultAllocator, &arrow.FixedSizeBinaryType{ByteWidth: 16})
	defer b.Release()
	v := bytes.Repeat([]byte{fill}, 16)
	for range rows {
		b.Append(v)
	}
	a := b.NewArray()
	defer a.Release()
	return schema, array.NewRecordBatch(schema, []arrow.Array{a}, int64(rows))
}

// encoded is the FlightData messages of a stream of rec, encoded; edit
// may change them first.
func encoded(t *testing.T, schema *arrow.Schema, rec arrow.RecordBatch, edit func([]*flight.FlightData)) [][]byte {
	t.Helper()
	var s sentStream
	w := flight.NewRecordWriter(&s, ipc.WithSchema(schema))
	require.NoError(t, w.Write(rec))
	require.NoError(t, w.Close())
	if edit != nil {
		edit(s.msgs)
	}
	var out [][]byte
	for _, m := range s.msgs {
		b, err := proto.Marshal(m)
		require.NoError(t, err)
		out = append(out, b)
	}
	return out
}

// TestReaderRefusesAShortBody: a node that sends a batch whose body is
// shorter than its header says gets an error, and never the bytes an
// earlier stream (another node's) left in the pooled receive buffer.
//
// Not parallel, for the pool (TestReaderReusesReleasedBuffers).
func TestReaderRefusesAShortBody(t *testing.T) {
	// Another stream's batch, read and released: its buffer is pooled.
	schema, secret := uuidBatch(6000, 0x5E)
	defer secret.Release()
	rdr, err := NewReader(&fedStream{msgs: encoded(t, schema, secret, nil)})
	require.NoError(t, err)
	require.True(t, rdr.Next())
	require.True(t, array.RecordEqual(secret, rdr.RecordBatch()))
	rdr.Release()

	// A larger batch of the same size class, its body cut short.
	_, rec := uuidBatch(7000, 0x01)
	defer rec.Release()
	msgs := encoded(t, schema, rec, func(m []*flight.FlightData) {
		last := m[len(m)-1]
		last.DataBody = last.DataBody[:70_000]
	})
	rdr, err = NewReader(&fedStream{msgs: msgs})
	require.NoError(t, err)
	defer rdr.Release()
	for rdr.Next() {
		ids := rdr.RecordBatch().Column(0).(*array.FixedSizeBinary)
		for i := range ids.Len() {
			require.NotEqual(t, byte(0x5E), ids.Value(i)[0], "row %d is the earlier stream's", i)
		}
	}
	require.ErrorContains(t, rdr.Err(), "a body of 70000 bytes, but its header says 112000")
}
