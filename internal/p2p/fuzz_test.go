package p2p

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"testing"
)

// frame builds a length-prefixed frame around body.
func frame(body []byte) []byte {
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(body)))
	return append(hdr[:n:n], body...)
}

// FuzzDecode feeds garbage, truncated and oversized frames to every message
// decoder: none may panic, and each returns promptly (the reader is finite).
func FuzzDecode(f *testing.F) {
	f.Add(frame([]byte(`{"name":"lab-a","addrs":["/ip4/127.0.0.1/udp/4002/quic-v1"],"schema_version":2}`)))
	f.Add(frame([]byte(`{"target":3,"migrations":[{"version":1,"name":"a","checksum":"x","sql":"y"}]}`)))
	f.Add(frame([]byte(`{"nonce":1}`)))
	f.Add(frame([]byte(`{"error":{"code":"drift","message":"m"},"body":{}}`)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(frame(nil))
	f.Add(frame([]byte(`{"nonce":`))[:4])
	f.Fuzz(func(t *testing.T, in []byte) {
		decoders := []func() any{
			func() any { return &RegisterRequest{} }, func() any { return &RegisterResponse{} },
			func() any { return &HealthPingRequest{} }, func() any { return &HealthPingResponse{} },
			func() any { return &SchemaSyncRequest{} }, func() any { return &SchemaSyncResponse{} },
			func() any { return &envelope{} },
		}
		for _, mk := range decoders {
			v := mk()
			if err := readFrame(bufio.NewReader(bytes.NewReader(in)), v); err == nil {
				// What decodes must encode again within the cap.
				var buf bytes.Buffer
				if err := writeFrame(&buf, v); err != nil && len(in) <= MaxMessageSize {
					t.Fatalf("decoded %T but cannot encode it: %v", v, err)
				}
			}
		}
	})
}
