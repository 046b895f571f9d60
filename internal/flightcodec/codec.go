// Package flightcodec is the gRPC codec of SynDB's Arrow Flight servers and
// clients. It speaks the standard Flight protocol, protobuf FlightData
// messages under the "proto" content subtype, so any Flight client or
// server interoperates with it, but it moves record batch bodies without
// the copies grpc's protobuf codec makes:
//
//   - a received FlightData's header, metadata and body alias the buffer
//     the message was received into instead of being copied out of it;
//   - a Reader (NewReader) receives each large message into a buffer it
//     takes back, for the next message, once the batch read from it is
//     released, so that a stream's messages reuse a few buffers instead
//     of each allocating (and zeroing) its own. A FlightData received
//     any other way (arrow-go's flight.NewRecordReader) keeps its buffer
//     for good, since its reader may keep what points into it (an Arrow
//     String's values alias their buffer) past the batch's release: the
//     garbage collector frees it with the last of them;
//   - a Writer sends each record batch's body straight from its Arrow
//     buffers, and returns only once gRPC has written them.
//
// Every other message goes through grpc's own protobuf codec.
package flightcodec

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// FlightData's field numbers (Flight.proto).
const (
	fieldDescriptor  = 1
	fieldDataHeader  = 2
	fieldAppMetadata = 3
	fieldDataBody    = 1000
)

// codec is the encoding.CodecV2 of this package.
type codec struct{ base encoding.CodecV2 }

func newCodec() codec { return codec{base: encoding.GetCodecV2(grpcproto.Name)} }

// ServerOption makes a gRPC server use the codec for every call.
func ServerOption() grpc.ServerOption { return grpc.ForceServerCodecV2(newCodec()) }

// DialOption makes a gRPC client use the codec for every call.
func DialOption() grpc.DialOption {
	return grpc.WithDefaultCallOptions(grpc.ForceCodecV2(newCodec()))
}

// Name is the content subtype, protobuf's: the messages are protobuf.
func (codec) Name() string { return grpcproto.Name }

// Marshal encodes v: a Writer's frame from its parts, anything else with
// protobuf.
func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*frame); ok {
		return f.slice(), nil
	}
	return c.base.Marshal(v)
}

// Unmarshal decodes data into v: a FlightData in place, anything else
// with protobuf.
func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if d, ok := v.(*recvData); ok {
		return d.unmarshal(data)
	}
	fd, ok := v.(*flight.FlightData)
	if !ok {
		return c.base.Unmarshal(data, v)
	}
	// One buffer is taken as it is (with a reference of its own, which is
	// never dropped); several are copied into one.
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	b := buf.ReadOnlyData()
	return unmarshalFlightData(b[:len(b):len(b)], fd)
}

// unmarshalFlightData decodes b into fd, its bytes fields aliasing b. As
// protobuf does, a repeated bytes field keeps its last value, a repeated
// descriptor is merged, and unknown fields are skipped.
func unmarshalFlightData(b []byte, fd *flight.FlightData) error {
	fd.Reset()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("flight data: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if typ != protowire.BytesType || (num != fieldDescriptor && num != fieldDataHeader &&
			num != fieldAppMetadata && num != fieldDataBody) {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("flight data field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return fmt.Errorf("flight data field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		switch field := int(num); field {
		case fieldDescriptor:
			if fd.FlightDescriptor == nil {
				fd.FlightDescriptor = new(flight.FlightDescriptor)
			}
			if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(v, fd.FlightDescriptor); err != nil {
				return fmt.Errorf("flight data descriptor: %w", err)
			}
		case fieldDataHeader:
			fd.DataHeader = v
		case fieldAppMetadata:
			fd.AppMetadata = v
		case fieldDataBody:
			fd.DataBody = v
		}
	}
	return nil
}
