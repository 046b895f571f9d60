package flightcodec

import (
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
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
	c, err := flight.NewClientWithMiddleware(addr, nil, nil, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	stream, err := c.DoGet(t.Context(), &flight.Ticket{Ticket: []byte("t")})
	require.NoError(t, err)
	cs := &countingStream{FlightService_DoGetClient: stream}
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
	c, err := flight.NewClientWithMiddleware(addr, nil, nil, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	stream, err := c.DoGet(t.Context(), &flight.Ticket{Ticket: []byte("t")})
	require.NoError(t, err)
	_, err = NewReader(stream)
	require.Error(t, err)
	t.Log(err)
}
