package workflows_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/syndb/federation/workflows"
)

// TestReplay replays every recorded history in testdata/ against the current
// workflow code: a change that breaks determinism for runs already in flight
// fails here. Histories are recorded from the real dev server; see
// testdata/README.md for the command.
func TestReplay(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories in testdata/")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			r := worker.NewWorkflowReplayer()
			workflows.Register(r)
			log := tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(log, file))
		})
	}
}

// TestReplayCatchesNondeterminism shows the replay test can fail: a history
// whose first activity is not the one the code schedules is refused.
func TestReplayCatchesNondeterminism(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/schema_sync_v1.json")
	require.NoError(t, err)
	tampered := strings.Replace(string(raw), `"ApplyHubSchema"`, `"SomethingElse"`, 1)
	require.NotEqual(t, string(raw), tampered)
	file := filepath.Join(t.TempDir(), "tampered.json")
	require.NoError(t, os.WriteFile(file, []byte(tampered), 0o600))
	r := worker.NewWorkflowReplayer()
	workflows.Register(r)
	log := tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	err = r.ReplayWorkflowHistoryFromJSONFile(log, file)
	require.Error(t, err)
	require.Contains(t, err.Error(), "nondeterministic")
}
