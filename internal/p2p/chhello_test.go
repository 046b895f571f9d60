package p2p

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"
)

// captureHello returns the first bytes a real clickhouse-go client sends
// to a listener that never answers: its Hello, whole.
func captureHello(t *testing.T, database, user, password string) []byte {
	t.Helper()
	ln, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	conn, err := chgo.Open(&chgo.Options{Addr: []string{ln.Addr().String()},
		Auth:        chgo.Auth{Database: database, Username: user, Password: password},
		DialTimeout: 5 * time.Second, MaxOpenConns: 1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	go func() { _ = conn.Ping(t.Context()) }()
	c, err := ln.Accept()
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	// The client sends its Hello in one write and waits for the answer:
	// read until the bytes stop.
	var raw bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		raw.Write(buf[:n])
		if err != nil || strings.HasSuffix(raw.String(), password) {
			break
		}
	}
	return raw.Bytes()
}

// chStr is a native-protocol string, built by hand: the oracle of the
// encoding.
func chStr(s string) []byte { return append(binary.AppendUvarint(nil, uint64(len(s))), s...) }

func TestHelloOfRealClient(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, database, user, password string }{
		{"node name, no password", "", "lab-a", ""},
		{"database and password", "syndb", "lab-b", "s3cret-' with spaces"},
		{"long password", "syndb", "lab-c", strings.Repeat("p", 300)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			raw := captureHello(t, tc.database, tc.user, tc.password)
			tail := append(append(chStr(tc.database), chStr(tc.user)...), chStr(tc.password)...)
			require.True(t, bytes.HasSuffix(raw, tail), "hello ends with database, user, password")
			require.Equal(t, byte(0), raw[0], "packet type Hello")

			h, err := ReadCHHello(bufio.NewReader(bytes.NewReader(raw)))
			require.NoError(t, err)
			require.Equal(t, CHHello{ClientName: h.ClientName, Major: chgo.ClientVersionMajor, Minor: chgo.ClientVersionMinor,
				Revision: chgo.ClientTCPProtocolVersion, Database: tc.database, User: tc.user, Password: tc.password}, h)
			require.True(t, strings.HasPrefix(h.ClientName, chgo.ClientName), h.ClientName)
			require.Equal(t, raw, h.Append(nil), "re-encoding reproduces the client's bytes")

			// The node's rewrite: the same packet with its own user and password.
			h.User, h.Password = "syndb_gateway", "local-pw"
			want := append(bytes.Clone(raw[:len(raw)-len(tail)]), chStr(tc.database)...)
			want = append(append(want, chStr("syndb_gateway")...), chStr("local-pw")...)
			require.Equal(t, want, h.Append(nil))
		})
	}
}

func TestHelloRefusals(t *testing.T) {
	t.Parallel()
	good := CHHello{ClientName: "ClickHouse client", Major: 18, Minor: 16, Revision: 54412, Database: "syndb", User: "lab-a"}.Append(nil)
	huge := append([]byte{0}, binary.AppendUvarint(nil, maxHelloString+1)...)
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"query packet first", append([]byte{1}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"oversized string", append(huge, make([]byte, 16)...)},
		{"bad varint", []byte{0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ReadCHHello(bufio.NewReader(bytes.NewReader(tc.in)))
			require.Error(t, err)
		})
	}
}

func TestCHExceptionLayout(t *testing.T) {
	t.Parallel()
	b := AppendCHException(nil, CHNetworkError, "gone")
	want := []byte{2, 210, 0, 0, 0}
	want = append(want, chStr("DB::Exception")...)
	want = append(append(append(want, chStr("gone")...), chStr("")...), 0)
	require.Equal(t, want, b)
}

// FuzzCHHello feeds any bytes to the Hello reader: it never panics, reads
// at most the packet, and what it accepts re-encodes to the bytes it read.
func FuzzCHHello(f *testing.F) {
	f.Add(CHHello{ClientName: "ClickHouse", Major: 18, Minor: 16, Revision: 54412, User: "lab-a"}.Append(nil))
	f.Add(CHHello{ClientName: "clickhouse-go/2.50.0", Major: 2, Minor: 50, Revision: 54460, Database: "syndb", User: "lab-b", Password: "x"}.Append(nil))
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		h, err := ReadCHHello(r)
		if err != nil {
			return
		}
		rest, _ := io.ReadAll(r)
		read := in[:len(in)-len(rest)]
		again, err := ReadCHHello(bufio.NewReader(bytes.NewReader(h.Append(nil))))
		require.NoError(t, err)
		require.Equal(t, h, again)
		// Varints may be written longer than needed; the strings are exact.
		require.LessOrEqual(t, len(h.Append(nil)), len(read))
	})
}

// BenchmarkCHHelloRewrite is what routing by the Hello costs a connection
// over a port per node: reading the packet and writing it again.
func BenchmarkCHHelloRewrite(b *testing.B) {
	raw := CHHello{ClientName: "ClickHouse", Major: 18, Minor: 16, Revision: 54412, Database: "syndb", User: "lab-a"}.Append(nil)
	rd := bytes.NewReader(raw)
	br := bufio.NewReader(rd)
	out := make([]byte, 0, 256)
	for b.Loop() {
		rd.Reset(raw)
		br.Reset(rd)
		h, err := ReadCHHello(br)
		if err != nil {
			b.Fatal(err)
		}
		h.User, h.Password = "syndb_gateway", "pw"
		out = h.Append(out[:0])
	}
}
