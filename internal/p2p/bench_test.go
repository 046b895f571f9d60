package p2p

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/syndb/federation/internal/wire"
)

const echoProto = "/syndb/bench/echo/1.0.0"

// BenchmarkHealthPing measures a HealthPing request/response over QUIC on
// loopback (a new stream per call, as the hub does), beside a bare libp2p
// echo of the same size over the same connection: the baseline shows what
// the framing, JSON and handler cost on top of libp2p itself.
func BenchmarkHealthPing(b *testing.B) {
	b.Run("healthping", func(b *testing.B) {
		server, client := benchHosts(b)
		Handle(server, HealthPing, slog.New(slog.DiscardHandler), nil,
			func(_ context.Context, _ peer.ID, req *wire.HealthPingRequest) (*wire.HealthPingResponse, error) {
				return &wire.HealthPingResponse{Nonce: req.GetNonce(), Name: "lab-a", ClickhouseOk: true, SchemaVersion: 3}, nil
			})
		run(b, func(ctx context.Context, i int) error {
			var resp wire.HealthPingResponse
			return Call(ctx, client, server.ID(), HealthPing, &wire.HealthPingRequest{Nonce: uint64(i)}, &resp)
		})
	})
	b.Run("bare-echo", func(b *testing.B) {
		server, client := benchHosts(b)
		server.SetStreamHandler(echoProto, func(s network.Stream) {
			buf, err := io.ReadAll(io.LimitReader(s, 1024))
			if err == nil {
				_, err = s.Write(buf)
			}
			if err != nil {
				_ = s.Reset()
				return
			}
			_ = s.Close()
		})
		msg := make([]byte, 64)
		run(b, func(ctx context.Context, _ int) error {
			s, err := client.NewStream(ctx, server.ID(), echoProto)
			if err != nil {
				return err
			}
			if _, err := s.Write(msg); err != nil {
				_ = s.Reset()
				return err
			}
			_ = s.CloseWrite()
			if _, err := io.ReadAll(s); err != nil {
				_ = s.Reset()
				return err
			}
			return s.Close()
		})
	})
}

func benchHosts(b *testing.B) (server, client host.Host) {
	b.Helper()
	server, client = newTestHost(b), newTestHost(b)
	if err := client.Connect(b.Context(), peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
		b.Fatal(err)
	}
	return server, client
}

func run(b *testing.B, call func(ctx context.Context, i int) error) {
	b.Helper()
	lat := make([]time.Duration, 0, b.N)
	ctx := b.Context()
	b.ResetTimer()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		if err := call(ctx, i); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
}
