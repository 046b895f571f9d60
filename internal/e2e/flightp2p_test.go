package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// flightServed counts, from its log, the Flight streams the agent of the
// fleet node served (DoGet) or loaded (DoPut), by transport: "libp2p" or
// "tcp".
func flightServed(node string) (map[string]int, error) {
	raw, err := os.ReadFile(filepath.Join(fedRoot, "logs", node+".log"))
	if err != nil {
		return nil, fmt.Errorf("log of %s: %w", node, err)
	}
	out := map[string]int{}
	for line := range strings.Lines(string(raw)) {
		if !strings.Contains(line, `msg="flight DoGet served"`) && !strings.Contains(line, `msg="flight DoPut loaded"`) {
			continue
		}
		for _, tr := range []string{"libp2p", "tcp"} {
			if strings.Contains(line, " transport="+tr) {
				out[tr]++
			}
		}
	}
	return out, nil
}

// overLibp2p returns a check, to call once the test's Flight streams are
// done, that each of nodes (on the default data plane) served more Flight
// streams over libp2p since overLibp2p was called, and none over TCP: the
// hub was handed libp2p:// locations and dialled them through its host.
func overLibp2p(t *testing.T, nodes ...string) func() {
	t.Helper()
	before := map[string]map[string]int{}
	for _, n := range nodes {
		c, err := flightServed(n)
		require.NoError(t, err)
		before[n] = c
	}
	return func() {
		t.Helper()
		for _, n := range nodes {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			err := pollUntil(ctx, func() error {
				c, err := flightServed(n)
				switch {
				case err != nil:
					return err
				case c["tcp"] != before[n]["tcp"]:
					return fmt.Errorf("%s served %d Flight streams over TCP", n, c["tcp"]-before[n]["tcp"])
				case c["libp2p"] <= before[n]["libp2p"]:
					return fmt.Errorf("%s served no Flight stream over libp2p yet", n)
				}
				return nil
			})
			cancel()
			require.NoError(t, err)
		}
	}
}
