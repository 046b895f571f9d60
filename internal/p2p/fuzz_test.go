package p2p

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"testing"
	"testing/iotest"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/syndb/federation/internal/wire"
)

// frame builds a length-prefixed frame around body.
func frame(body []byte) []byte {
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(body)))
	return append(hdr[:n:n], body...)
}

func mustFrame(f *testing.F, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	return frame(b)
}

// FuzzDecode feeds garbage, truncated and oversized frames to every message
// decoder and validator: none may panic, and each returns promptly (the
// reader is finite).
func FuzzDecode(f *testing.F) {
	f.Add(mustFrame(f, &wire.RegisterRequest{Name: "lab-a", Addrs: []string{"/ip4/127.0.0.1/udp/4002/quic-v1"}, SchemaVersion: 2}))
	f.Add(mustFrame(f, &wire.SchemaSyncRequest{Target: 1, Migrations: []*wire.Migration{{Version: 1, Name: "a", Checksum: "x", Sql: "y"}}}))
	f.Add(mustFrame(f, &wire.HealthPingRequest{Nonce: 1}))
	f.Add(mustFrame(f, &wire.GetFlightEndpointRequest{Query: &wire.FlightQuery{Table: "neuron", Columns: []string{"cid"}}}))
	f.Add(mustFrame(f, &wire.AnalyticsQueryRequest{Kind: wire.KindSummary, Table: "neuron", Column: "volume", Quantiles: []float64{0.5}}))
	f.Add(mustFrame(f, &wire.OntologySyncRequest{Version: 1, Terms: []*wire.OntologyTerm{{Kind: "compartment", Id: "axon", Label: "Axon"}}}))
	f.Add(mustFrame(f, &wire.Reply{Error: &wire.Error{Code: "drift", Message: "m"}}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(frame(nil))
	f.Add(mustFrame(f, &wire.HealthPingRequest{Nonce: 1 << 60})[:4])
	decoders := []func() proto.Message{
		func() proto.Message { return &wire.RegisterRequest{} }, func() proto.Message { return &wire.RegisterResponse{} },
		func() proto.Message { return &wire.HealthPingRequest{} }, func() proto.Message { return &wire.HealthPingResponse{} },
		func() proto.Message { return &wire.SchemaSyncRequest{} }, func() proto.Message { return &wire.SchemaSyncResponse{} },
		func() proto.Message { return &wire.DatasetCatalogRequest{} }, func() proto.Message { return &wire.DatasetCatalogResponse{} },
		func() proto.Message { return &wire.GetFlightEndpointRequest{} }, func() proto.Message { return &wire.GetFlightEndpointResponse{} },
		func() proto.Message { return &wire.AnalyticsQueryRequest{} }, func() proto.Message { return &wire.AnalyticsQueryResponse{} },
		func() proto.Message { return &wire.OntologySyncRequest{} }, func() proto.Message { return &wire.OntologySyncResponse{} },
		func() proto.Message { return &wire.SignedTicket{} }, func() proto.Message { return &wire.FlightTicket{} },
		func() proto.Message { return &wire.Reply{} },
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, mk := range decoders {
			m := mk()
			if err := readFrame(bufio.NewReader(bytes.NewReader(in)), m, MaxMessageSize); err != nil {
				continue
			}
			if v, ok := m.(validator); ok {
				_ = v.Validate()
			}
			// What decodes must encode again within the cap.
			var buf bytes.Buffer
			if err := writeFrame(&buf, m, MaxMessageSize); err != nil {
				t.Fatalf("decoded %T but cannot encode it: %v", m, err)
			}
		}
	})
}

// requestTypes are the request messages, one per protocol, by spec.
var requestTypes = []struct {
	spec Spec
	new  func() proto.Message
}{
	{Register, func() proto.Message { return &wire.RegisterRequest{} }},
	{HealthPing, func() proto.Message { return &wire.HealthPingRequest{} }},
	{SchemaSync, func() proto.Message { return &wire.SchemaSyncRequest{} }},
	{DatasetCatalog, func() proto.Message { return &wire.DatasetCatalogRequest{} }},
	{FlightEndpoint, func() proto.Message { return &wire.GetFlightEndpointRequest{} }},
	{AnalyticsQuery, func() proto.Message { return &wire.AnalyticsQueryRequest{} }},
	{OntologySync, func() proto.Message { return &wire.OntologySyncRequest{} }},
}

// seedBodies are valid and nearly valid request bodies (no frame).
func seedBodies(f *testing.F) {
	terms := []*wire.OntologyTerm{{Kind: "compartment", Id: "neuron", Label: "Neuron"}, {Kind: "compartment", Id: "axon", Label: "Axon", ParentId: "neuron"}}
	for _, m := range []proto.Message{
		&wire.RegisterRequest{Name: "lab-a", Addrs: []string{"/ip4/127.0.0.1/udp/4002/quic-v1"}, FlightAddr: "127.0.0.1:50052",
			ClickhouseAddr: "127.0.0.1:9000", SchemaVersion: 2, AgentVersion: "dev", EnrollmentToken: "sdbenroll_x"},
		&wire.SchemaSyncRequest{Target: 1, Migrations: []*wire.Migration{{Version: 1, Name: "a", Checksum: "x", Sql: "y"}}},
		&wire.DatasetCatalogRequest{DatasetIds: []string{"6f1c1d3e-8d0a-4c43-9a52-2f2b5d1c0e11"}},
		&wire.GetFlightEndpointRequest{Query: &wire.FlightQuery{Table: "synapse", Columns: []string{"pre_id", "post_id"}}},
		&wire.AnalyticsQueryRequest{Kind: wire.KindSummary, Table: "neuron", Column: "volume", Quantiles: []float64{0, 1}},
		&wire.OntologySyncRequest{Version: 1, Checksum: wire.OntologyChecksum(terms), Terms: terms},
		&wire.OntologySyncRequest{Version: 1, Terms: append(terms, terms[0])},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
}

// FuzzValidate decodes arbitrary bodies as every request message and
// validates them: no panic, and the verdict survives an encode/decode round
// trip (it depends on the content alone, not on map order or the bytes'
// spelling).
func FuzzValidate(f *testing.F) {
	seedBodies(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, rt := range requestTypes {
			m := rt.new()
			if err := proto.Unmarshal(body, m); err != nil {
				continue
			}
			first := m.(validator).Validate()
			again, err := proto.Marshal(m)
			if err != nil {
				t.Fatalf("%T decoded but does not encode: %v", m, err)
			}
			m2 := rt.new()
			if err := proto.Unmarshal(again, m2); err != nil {
				t.Fatalf("%T re-decode: %v", m, err)
			}
			second := m2.(validator).Validate()
			if (first == nil) != (second == nil) {
				t.Fatalf("%T: validation %v, then %v after a round trip", m, first, second)
			}
		}
	})
}

// fuzzStream is the reading side of a stream for serve: the request bytes,
// from a peer.
type fuzzStream struct {
	network.Stream
	r    io.Reader
	conn fuzzConn
}

func (s *fuzzStream) Read(p []byte) (int, error) { return s.r.Read(p) }
func (s *fuzzStream) Conn() network.Conn         { return s.conn }

type fuzzConn struct{ network.Conn }

func (fuzzConn) RemotePeer() peer.ID { return "fuzzer" }

// FuzzServe feeds arbitrary bytes, a byte at a time, to every protocol's
// handler path (frame, decode, validate): it never panics, never hands the
// handler an invalid request, and always answers with a reply that fits the
// protocol's response cap.
func FuzzServe(f *testing.F) {
	seedBodies(f)
	f.Add(frame([]byte{0x08, 0x01}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, rt := range requestTypes {
			for _, raw := range [][]byte{in, frame(in)} {
				s := &fuzzStream{r: iotest.OneByteReader(bytes.NewReader(raw))}
				reply := serve(t.Context(), s, rt.spec, log, nil, func() proto.Message { return rt.new() },
					func(_ context.Context, _ peer.ID, req proto.Message) (proto.Message, error) {
						if err := req.(validator).Validate(); err != nil {
							t.Fatalf("%s handler got an invalid request: %v", rt.spec.ID, err)
						}
						return req, nil
					})
				var buf bytes.Buffer
				if err := writeFrame(&buf, reply, rt.spec.MaxResponse+64); err != nil && reply.GetError() != nil {
					t.Fatalf("%s: an error reply does not fit: %v", rt.spec.ID, err)
				}
			}
		}
	})
}
