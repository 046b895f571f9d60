package nodeagent

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/chnative"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/flightcodec"
	"github.com/syndb/federation/internal/wire"
)

// benchRows is the size of the table BenchmarkFlightDoGet reads.
const benchRows = 10_000_000

// benchSQL is the query DoGet runs for the whole bench table.
const benchSQL = "SELECT `id`, `n`, `v`, `k`, `s` FROM `bench`"

// BenchmarkFlightDoGet reads a 10,000,000-row table over DoGet, with the
// row reader (flight-scan) and the native-block reader over direct gRPC
// (flight-blocks) and through a node agent over libp2p, on QUIC
// (flight-libp2p) and on TCP with TLS 1.3 (flight-libp2p-tcp),
// and, in the same run, the baselines: as many bytes as the columnar DoGet
// carried copied over a plain loopback TCP connection, and the same rows
// as ClickHouse exports them natively, read to the end and discarded: over
// HTTP in FORMAT Native, and over the native protocol decoded by ch-go
// (chnative) and by clickhouse-go (rows.Next without Scan).
func BenchmarkFlightDoGet(b *testing.B) {
	const db = "flight_bench"
	conn := openDB(b, db)
	createSynthetic(b, conn, "bench", benchRows)
	require.NoError(b, conn.Exec(b.Context(), "OPTIMIZE TABLE bench FINAL"))
	var carried int64
	report := func(b *testing.B, bytes int64) {
		// This process's CPU time a read (server and client alike), which
		// other load on the machine changes far less than the wall time.
		b.ReportMetric(cpuSeconds()/float64(b.N), "go-cpu-s/op")
		secs := b.Elapsed().Seconds()
		b.ReportMetric(float64(benchRows)*float64(b.N)/secs, "rows/s")
		if bytes > 0 {
			b.ReportMetric(float64(bytes)*float64(b.N)/secs/1e6, "MB/s")
			b.ReportMetric(float64(bytes)/1e6, "MB/op")
		}
	}
	for _, mode := range []struct {
		name   string
		native bool
	}{{"flight-scan", false}, {"flight-blocks", true}} {
		b.Run(mode.name, func(b *testing.B) {
			var f *flightFixture
			if mode.native {
				f = startFlightService(b, "lab-bench", fixedConn(conn), withNative(nativeConfig(b, db)))
			} else {
				f = startFlightService(b, "lab-bench", fixedConn(conn))
			}
			bytes := benchDoGet(b, func() (*flightcodec.Reader, error) {
				return f.doGet(b.Context(), f.ticket(b, &wire.FlightQuery{Table: "bench"}))
			})
			report(b, bytes)
			b.ReportMetric(float64(f.mem.peak.Load())/1e6, "peak-arrow-MB")
			if mode.native {
				carried = bytes
			}
		})
	}
	for _, mode := range []struct{ name, prefer string }{{"flight-libp2p", "quic"}, {"flight-libp2p-tcp", "tcp"}} {
		b.Run(mode.name, func(b *testing.B) {
			// The same table through a node agent, over its hub's libp2p
			// connection on loopback, as the hub reads it: QUIC, or TCP
			// with TLS 1.3 when both prefer TCP.
			a := startAgentWith(b, "lab-bench-"+mode.prefer, db, config.DataPlaneLibp2p,
				func(c *config.Node) { c.Prefer = mode.prefer })
			report(b, benchDoGet(b, func() (*flightcodec.Reader, error) {
				ep := a.endpoint(b, &wire.GetFlightEndpointRequest{Query: &wire.FlightQuery{Table: "bench"}})
				return libp2pFlight(b, a.hub, ep).doGet(b.Context(), ep.GetTicket())
			}))
		})
	}
	b.Run("tcp-baseline", func(b *testing.B) {
		if carried == 0 {
			b.Skip("needs the flight-blocks sub-benchmark's byte count")
		}
		tcpCopy(b, carried)
		report(b, carried)
	})
	b.Run("native-http", func(b *testing.B) {
		var bytes int64
		for b.Loop() {
			bytes = httpNative(b, db)
		}
		report(b, bytes)
	})
	b.Run("native-chgo", func(b *testing.B) {
		for b.Loop() {
			rows, err := chnative.Query(b.Context(), nativeConfig(b, db), benchSQL)
			require.NoError(b, err)
			var res proto.Results
			n := 0
			for k := rows.Next(res.Auto()); k > 0; k = rows.Next(res.Auto()) {
				n += k
			}
			require.NoError(b, rows.Err())
			require.NoError(b, rows.Close())
			require.Equal(b, benchRows, n)
		}
		report(b, 0)
	})
	b.Run("native-clickhouse-go", func(b *testing.B) {
		for b.Loop() {
			rows, err := conn.Query(b.Context(), benchSQL)
			require.NoError(b, err)
			n := 0
			for rows.Next() {
				n++
			}
			require.NoError(b, rows.Err())
			require.NoError(b, rows.Close())
			require.Equal(b, benchRows, n)
		}
		report(b, 0)
	})
}

// benchDoGet reads the bench table from a DoGet that get starts, per
// iteration, and returns the bytes a DoGet carried.
func benchDoGet(b *testing.B, get func() (*flightcodec.Reader, error)) int64 {
	var bytes int64
	for b.Loop() {
		rdr, err := get()
		require.NoError(b, err)
		n := int64(0)
		for rdr.Next() {
			n += rdr.RecordBatch().NumRows()
		}
		require.NoError(b, rdr.Err())
		bytes = rdr.Bytes()
		rdr.Release()
		require.Equal(b, int64(benchRows), n)
	}
	return bytes
}

// tcpCopy copies size bytes over a loopback TCP connection per iteration.
func tcpCopy(b *testing.B, size int64) {
	lis, err := new(net.ListenConfig).Listen(b.Context(), "tcp", "127.0.0.1:0")
	require.NoError(b, err)
	defer func() { _ = lis.Close() }()
	go func() {
		buf := make([]byte, 1<<20)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			for left := size; left > 0; {
				k, err := c.Write(buf[:min(left, int64(len(buf)))])
				if err != nil {
					break
				}
				left -= int64(k)
			}
			_ = c.Close()
		}
	}()
	buf := make([]byte, 1<<20)
	for b.Loop() {
		c, err := new(net.Dialer).DialContext(b.Context(), "tcp", lis.Addr().String())
		require.NoError(b, err)
		var got int64
		for {
			k, err := c.Read(buf)
			got += int64(k)
			if err != nil {
				break
			}
		}
		_ = c.Close()
		require.Equal(b, size, got)
	}
}

// httpNative reads the bench table from the test server's HTTP interface
// in FORMAT Native to the end and returns the bytes it read.
func httpNative(b *testing.B, db string) int64 {
	testClickHouse(b)
	u := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(testCH.ch.HTTPPort)) + "/?" +
		url.Values{"database": {db}, "query": {benchSQL + " FORMAT Native"}}.Encode()
	req, err := http.NewRequestWithContext(b.Context(), http.MethodGet, u, nil)
	require.NoError(b, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(b, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(b, http.StatusOK, resp.StatusCode)
	n, err := io.Copy(io.Discard, resp.Body)
	require.NoError(b, err)
	return n
}

// cpuSeconds is the CPU time (user and system) this process has used since
// the last call, or since it started.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	now := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	d := now - lastCPU
	lastCPU = now
	return d.Seconds()
}

var lastCPU time.Duration
