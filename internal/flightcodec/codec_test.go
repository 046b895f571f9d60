package flightcodec

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

var testSchema = arrow.NewSchema([]arrow.Field{
	{Name: "n", Type: arrow.PrimitiveTypes.Int64},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "f", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
}, nil)

// testBatches builds batches of rows rows each; every seventh string and
// every fifth float is null.
func testBatches(t *testing.T, batches, rows int) []arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(memory.DefaultAllocator, testSchema)
	defer b.Release()
	var out []arrow.RecordBatch
	k := 0
	for range batches {
		for range rows {
			b.Field(0).(*array.Int64Builder).Append(int64(k) * 3)
			if k%7 == 0 {
				b.Field(1).AppendNull()
			} else {
				b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("value-%d", k))
			}
			if k%5 == 0 {
				b.Field(2).AppendNull()
			} else {
				b.Field(2).(*array.Float32Builder).Append(float32(k) / 2)
			}
			k++
		}
		out = append(out, b.NewRecordBatch())
	}
	t.Cleanup(func() {
		for _, r := range out {
			r.Release()
		}
	})
	return out
}

// server is a Flight service whose DoGet sends batches, each a copy that
// is overwritten with garbage as soon as Write returns (as memory that is
// reused would be), with this package's Writer or with arrow-go's own.
type server struct {
	flight.BaseFlightServer
	batches []arrow.RecordBatch
	repeat  int // times to send batches; once when 0
	ours    bool
	done    chan error
}

func (s *server) DoGet(_ *flight.Ticket, stream flight.FlightService_DoGetServer) error {
	var w interface {
		Write(arrow.RecordBatch) error
		Close() error
	}
	if s.ours {
		w = NewWriter(stream, ipc.WithSchema(testSchema))
	} else {
		w = flight.NewRecordWriter(stream, ipc.WithSchema(testSchema))
	}
	err := func() error {
		for range max(s.repeat, 1) {
			for _, r := range s.batches {
				cp := copyBatch(r)
				if err := w.Write(cp); err != nil {
					return err // gRPC may still read cp: leave it be
				}
				scribble(cp)
				cp.Release()
			}
		}
		return w.Close()
	}()
	if s.done != nil {
		s.done <- err
	}
	return err
}

func copyBatch(r arrow.RecordBatch) arrow.RecordBatch {
	cols := make([]arrow.Array, r.NumCols())
	for i, c := range r.Columns() {
		d := c.Data()
		bufs := make([]*memory.Buffer, len(d.Buffers()))
		for j, b := range d.Buffers() {
			if b != nil {
				bufs[j] = memory.NewBufferBytes(append([]byte(nil), b.Bytes()...))
			}
		}
		nd := array.NewData(d.DataType(), d.Len(), bufs, nil, d.NullN(), d.Offset())
		cols[i] = array.MakeFromData(nd)
		nd.Release()
	}
	out := array.NewRecordBatch(r.Schema(), cols, r.NumRows())
	for _, c := range cols {
		c.Release()
	}
	return out
}

// scribble overwrites every values buffer of r (offsets and bitmaps are
// left, so that reading r cannot go out of bounds).
func scribble(r arrow.RecordBatch) {
	for _, c := range r.Columns() {
		bufs := c.Data().Buffers()
		b := bufs[len(bufs)-1].Bytes()
		for i := range b {
			b[i] = 0xEE
		}
	}
}

func serve(t *testing.T, s *server) string {
	t.Helper()
	lis, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var opts []grpc.ServerOption
	if s.ours {
		opts = append(opts, ServerOption())
	}
	gs := grpc.NewServer(opts...)
	flight.RegisterFlightServiceServer(gs, s)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

// client is how a test reads a stream: with arrow-go's Flight client and
// codec, with this package's codec under arrow-go's reader, or with this
// package's codec and Reader.
type client int

const (
	plainClient client = iota
	codecClient
	readerClient
)

func (c client) String() string { return [...]string{"arrow-go", "codec", "reader"}[c] }

// recordReader is what a test reads batches with.
type recordReader interface {
	Next() bool
	RecordBatch() arrow.RecordBatch
	Err() error
	Release()
}

// doGetStream starts a DoGet on addr with a client of kind's codec.
func doGetStream(t *testing.T, addr string, kind client) flight.FlightService_DoGetClient {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if kind != plainClient {
		opts = append(opts, DialOption())
	}
	c, err := flight.NewClientWithMiddleware(addr, nil, nil, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	stream, err := c.DoGet(t.Context(), &flight.Ticket{Ticket: []byte("t")})
	require.NoError(t, err)
	return stream
}

// doGet starts a DoGet on addr and returns a reader of its batches.
func doGet(t *testing.T, addr string, kind client) recordReader {
	t.Helper()
	stream := doGetStream(t, addr, kind)
	var rdr recordReader
	var err error
	if kind == readerClient {
		rdr, err = NewReader(stream)
	} else {
		rdr, err = flight.NewRecordReader(stream)
	}
	require.NoError(t, err)
	return rdr
}

// read reads every batch on addr, each kept (retained) until the test ends.
func read(t *testing.T, addr string, kind client) []arrow.RecordBatch {
	t.Helper()
	rdr := doGet(t, addr, kind)
	defer rdr.Release()
	var out []arrow.RecordBatch
	for rdr.Next() {
		r := rdr.RecordBatch()
		r.Retain()
		out = append(out, r)
	}
	require.NoError(t, rdr.Err())
	t.Cleanup(func() {
		for _, r := range out {
			r.Release()
		}
	})
	return out
}

// TestInteroperates: each pairing of this package's server and client with
// arrow-go's plain ones reads exactly the batches sent, though the sender
// overwrites each batch once Write returns.
func TestInteroperates(t *testing.T) {
	t.Parallel()
	// 40,000 rows a batch: values buffers of 320 KB, far past gRPC's flow
	// control window, so a Write that returned before gRPC had sent the
	// batch would send garbage.
	batches := testBatches(t, 4, 40_000)
	// Every batch is kept while the rest are read: a Reader that pooled a
	// batch's receive buffer while it was still held would overwrite it.
	for _, c := range []struct {
		server bool
		client client
	}{{true, plainClient}, {true, codecClient}, {true, readerClient}, {false, codecClient}, {false, readerClient}} {
		t.Run(fmt.Sprintf("server-ours=%v/client=%v", c.server, c.client), func(t *testing.T) {
			t.Parallel()
			got := read(t, serve(t, &server{batches: batches, ours: c.server}), c.client)
			require.Len(t, got, len(batches))
			for i := range batches {
				require.True(t, array.RecordEqual(batches[i], got[i]), "batch %d differs", i)
			}
		})
	}
}

// TestWriterEndsWithItsClient: a client that goes away mid-stream ends the
// server's Write with an error instead of leaving it waiting.
func TestWriterEndsWithItsClient(t *testing.T) {
	t.Parallel()
	// 40 MB and more in all, past any window gRPC grows to.
	s := &server{batches: testBatches(t, 1, 40_000), repeat: 1000, ours: true, done: make(chan error, 1)}
	addr := serve(t, s)
	c, err := flight.NewClientWithMiddleware(addr, nil, nil, grpc.WithTransportCredentials(insecure.NewCredentials()), DialOption())
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithCancel(t.Context())
	stream, err := c.DoGet(ctx, &flight.Ticket{Ticket: []byte("t")})
	require.NoError(t, err)
	rdr, err := flight.NewRecordReader(stream)
	require.NoError(t, err)
	require.True(t, rdr.Next())
	cancel()
	rdr.Release()
	require.Error(t, <-s.done)
}

// TestUnmarshalMatchesProtobuf: FlightData decoded in place equals what
// protobuf decodes from the same bytes, repeated fields and all, but for
// the unknown fields protobuf keeps.
func TestUnmarshalMatchesProtobuf(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	blob := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	for i := range 200 {
		msg := &flight.FlightData{DataHeader: blob(rng.IntN(50)), DataBody: blob(rng.IntN(3000)), AppMetadata: blob(rng.IntN(3))}
		if i%3 == 0 {
			msg.FlightDescriptor = &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{"a", fmt.Sprint(i)}}
		}
		b, err := proto.Marshal(msg)
		require.NoError(t, err)
		switch i % 4 {
		case 1: // an unknown varint and an unknown bytes field
			b = protowire.AppendTag(b, 7, protowire.VarintType)
			b = protowire.AppendVarint(b, 99)
			b = protowire.AppendTag(b, 2001, protowire.BytesType)
			b = protowire.AppendBytes(b, blob(10))
		case 2: // a repeated body and descriptor
			b = protowire.AppendTag(b, fieldDataBody, protowire.BytesType)
			b = protowire.AppendBytes(b, blob(5))
			d, err := proto.Marshal(&flight.FlightDescriptor{Cmd: []byte("c")})
			require.NoError(t, err)
			b = protowire.AppendTag(b, fieldDescriptor, protowire.BytesType)
			b = protowire.AppendBytes(b, d)
		}
		want := new(flight.FlightData)
		require.NoError(t, proto.Unmarshal(b, want))
		want.ProtoReflect().SetUnknown(nil) // skipped, not kept
		got := new(flight.FlightData)
		require.NoError(t, unmarshalFlightData(b, got))
		require.True(t, proto.Equal(want, got), "message %d", i)
	}
	require.Error(t, unmarshalFlightData([]byte{0x12, 0x05, 1}, new(flight.FlightData)), "a truncated header")
	require.Error(t, unmarshalFlightData([]byte{0xff}, new(flight.FlightData)), "a truncated tag")
}
