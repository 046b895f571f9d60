package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/store"
)

// capture is tcpdump writing every packet of one interface to a file.
type capture struct {
	cmd  *exec.Cmd
	file string
	mu   sync.Mutex
	err  bytes.Buffer
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err.Write(p)
}

func (c *capture) stderr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err.String()
}

// startCapture runs tcpdump on ifc in ns ("" is the root namespace) until
// stop, once it listens.
func startCapture(t *testing.T, ns netns, ifc string) *capture {
	t.Helper()
	c := &capture{file: filepath.Join(t.TempDir(), ifc+".pcap")}
	args := []string{"tcpdump", "-i", ifc, "-n", "-s", "0", "-U", "-Z", "root", "-w", c.file}
	if ns.name != "" {
		args = append([]string{"ip", "netns", "exec", ns.name}, args...)
	}
	c.cmd = exec.CommandContext(context.Background(), args[0], args[1:]...)
	c.cmd.Stdout, c.cmd.Stderr = c, c
	require.NoError(t, c.cmd.Start())
	t.Cleanup(func() { _ = c.cmd.Process.Kill(); _ = c.cmd.Wait() })
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, pollUntil(ctx, func() error {
		if !strings.Contains(c.stderr(), "listening on") {
			return fmt.Errorf("tcpdump on %s not listening yet: %s", ifc, c.stderr())
		}
		return nil
	}))
	return c
}

// stop ends the capture and returns the packets' bytes as captured.
func (c *capture) stop(t *testing.T) []byte {
	t.Helper()
	require.NoError(t, c.cmd.Process.Signal(os.Interrupt))
	err := c.cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		require.NoError(t, err)
	}
	t.Logf("tcpdump: %s", strings.TrimSpace(c.stderr()))
	raw, err := os.ReadFile(c.file)
	require.NoError(t, err)
	return raw
}

// sendClear sends text in one UDP datagram, unencrypted, from ns to ip.
func sendClear(t *testing.T, ns netns, ip, text string) {
	t.Helper()
	args := []string{"bash", "-c", fmt.Sprintf("echo %s > /dev/udp/%s/9", text, ip)}
	if ns.name != "" {
		args = append([]string{"ip", "netns", "exec", ns.name}, args...)
	}
	out, err := exec.CommandContext(t.Context(), args[0], args[1:]...).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// netnsCapture: on the hub's links to the relay and to the direct lab,
// and on the relay's link to the NAT'd lab, a federated query returning a
// marker planted in both labs' data and an ETL load (Flight DoPut) of rows
// carrying another show neither marker nor any ClickHouse handshake in
// the clear.
func netnsCapture(t *testing.T, top *netnsTopology, marker string) {
	caps := []*capture{
		startCapture(t, netns{}, top.ifaces.hubRelay),
		startCapture(t, netns{}, top.ifaces.hubDirect),
		startCapture(t, top.relayNS, top.ifaces.relayNat),
	}
	names := []string{top.nat.name, top.direct.name}
	reader := newKey(t, "netns-capture-reader", store.RoleReader)
	res := queryAs(t, reader.key, queryBody(t,
		"SELECT _node, neuron_type, count() AS n FROM neuron GROUP BY _node, neuron_type ORDER BY _node, neuron_type", names...))
	require.Equal(t, http.StatusOK, res.status, "%+v", res.err)
	seen := map[string]bool{}
	for _, r := range res.rows {
		if strings.HasPrefix(fmt.Sprint(r["neuron_type"]), marker) {
			seen[fmt.Sprint(r["_node"])] = true
		}
	}
	require.Len(t, seen, 2, "the oracle: the marker crossed both links, in the query's answer")
	etlMarker := netnsEtl(t, top.nat)
	// The control: a datagram in the clear across each link shows up in
	// its capture, so a plaintext marker would have too.
	control := "netns-capture-control"
	sendClear(t, netns{}, "10.234.0.2", control)
	sendClear(t, netns{}, "10.234.2.2", control)
	sendClear(t, top.relayNS, "10.234.1.2", control)

	for _, c := range caps {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		require.NoError(t, pollUntil(ctx, func() error {
			raw, err := os.ReadFile(c.file)
			if err == nil && !bytes.Contains(raw, []byte(control)) {
				err = fmt.Errorf("control not captured in %s yet", c.file)
			}
			return err
		}))
		cancel()
		raw := c.stop(t)
		require.Greater(t, len(raw), 4096, "%s captured the traffic", c.file)
		for _, needle := range []string{marker, etlMarker, "ClickHouse", "clickhouse-go", "clickhouse"} {
			require.False(t, bytes.Contains(raw, []byte(needle)), "%q in the clear on %s", needle, c.file)
		}
	}
	// The direct lab, which prefers TCP, answered over TCP (with TLS 1.3,
	// whose records the marker check above read through), not QUIC.
	hubDirect := caps[1].file
	tcpPackets := countPackets(t, hubDirect, fmt.Sprintf("tcp port %d", top.hubPort))
	t.Logf("%d TCP packets to the direct lab's hub port", tcpPackets)
	require.Greater(t, tcpPackets, 10, "the direct lab's query crossed as TCP")
	require.Zero(t, countPackets(t, hubDirect, fmt.Sprintf("udp port %d", top.hubPort)), "no QUIC to the direct lab")
}

// countPackets is how many packets of the capture file match the tcpdump
// filter.
func countPackets(t *testing.T, file, filter string) int {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "tcpdump", "-r", file, "-n", filter).Output()
	require.NoError(t, err, "tcpdump -r %s %s", file, filter)
	return bytes.Count(out, []byte("\n"))
}
