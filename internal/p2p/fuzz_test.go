package p2p

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/syndb/federation/internal/fedpb"
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
	f.Add(mustFrame(f, &fedpb.RegisterRequest{Name: "lab-a", Addrs: []string{"/ip4/127.0.0.1/udp/4002/quic-v1"}, SchemaVersion: 2}))
	f.Add(mustFrame(f, &fedpb.SchemaSyncRequest{Target: 1, Migrations: []*fedpb.Migration{{Version: 1, Name: "a", Checksum: "x", Sql: "y"}}}))
	f.Add(mustFrame(f, &fedpb.HealthPingRequest{Nonce: 1}))
	f.Add(mustFrame(f, &fedpb.GetFlightEndpointRequest{Query: &fedpb.FlightQuery{Table: "neuron", Columns: []string{"cid"}}}))
	f.Add(mustFrame(f, &fedpb.AnalyticsQueryRequest{Kind: fedpb.KindSummary, Table: "neuron", Column: "volume", Quantiles: []float64{0.5}}))
	f.Add(mustFrame(f, &fedpb.OntologySyncRequest{Version: 1, Terms: []*fedpb.OntologyTerm{{Kind: "compartment", Id: "axon", Label: "Axon"}}}))
	f.Add(mustFrame(f, &fedpb.Reply{Error: &fedpb.Error{Code: "drift", Message: "m"}}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(frame(nil))
	f.Add(mustFrame(f, &fedpb.HealthPingRequest{Nonce: 1 << 60})[:4])
	decoders := []func() proto.Message{
		func() proto.Message { return &fedpb.RegisterRequest{} }, func() proto.Message { return &fedpb.RegisterResponse{} },
		func() proto.Message { return &fedpb.HealthPingRequest{} }, func() proto.Message { return &fedpb.HealthPingResponse{} },
		func() proto.Message { return &fedpb.SchemaSyncRequest{} }, func() proto.Message { return &fedpb.SchemaSyncResponse{} },
		func() proto.Message { return &fedpb.DatasetCatalogRequest{} }, func() proto.Message { return &fedpb.DatasetCatalogResponse{} },
		func() proto.Message { return &fedpb.GetFlightEndpointRequest{} }, func() proto.Message { return &fedpb.GetFlightEndpointResponse{} },
		func() proto.Message { return &fedpb.AnalyticsQueryRequest{} }, func() proto.Message { return &fedpb.AnalyticsQueryResponse{} },
		func() proto.Message { return &fedpb.OntologySyncRequest{} }, func() proto.Message { return &fedpb.OntologySyncResponse{} },
		func() proto.Message { return &fedpb.SignedTicket{} }, func() proto.Message { return &fedpb.FlightTicket{} },
		func() proto.Message { return &fedpb.Reply{} },
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
