package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// runAsSyndbEnv makes the test binary run syndb's main with the arguments
// after "--", so a test sees the real exit status and output.
const runAsSyndbEnv = "SYNDB_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runAsSyndbEnv) != "" {
		for i, a := range os.Args {
			if a == "--" {
				os.Args = append([]string{"syndb"}, os.Args[i+1:]...)
				break
			}
		}
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// syndb runs syndb with args and returns its stdout, stderr and exit status.
func syndb(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), runAsSyndbEnv+"=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		require.NoError(t, err)
	}
	return out.String(), errOut.String(), code
}

// alterHistory copies a recorded history into dir with edit applied to
// its events, and returns the copy's path.
func alterHistory(t *testing.T, dir, name string, edit func(events []map[string]any)) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "workflows", "testdata", name))
	require.NoError(t, err)
	var h struct {
		Events []map[string]any `json:"events"`
	}
	require.NoError(t, json.Unmarshal(raw, &h))
	edit(h.Events)
	out, err := json.Marshal(h)
	require.NoError(t, err)
	path := filepath.Join(dir, "altered-"+name)
	require.NoError(t, os.WriteFile(path, out, 0o600))
	return path
}

// event returns the event with id.
func event(t *testing.T, events []map[string]any, id string) map[string]any {
	t.Helper()
	for _, e := range events {
		if e["eventId"] == id {
			return e
		}
	}
	t.Fatalf("no event %s", id)
	return nil
}

// TestReplayReportsNondeterminism: a history the code would not reproduce
// (an activity renamed in event 11) is reported in a few lines: the
// workflow, the event, the SDK's reason, and exit status 1; the stack only
// with --verbose. A good history beside it still says ok.
func TestReplayReportsNondeterminism(t *testing.T) {
	dir := t.TempDir()
	bad := alterHistory(t, dir, "analytics_job_v1.json", func(events []map[string]any) {
		e := event(t, events, "11")
		attrs := e["activityTaskScheduledEventAttributes"].(map[string]any)
		require.Equal(t, "JobTargets", attrs["activityType"].(map[string]any)["name"])
		attrs["activityType"] = map[string]any{"name": "JobTargetsRenamed"}
	})
	good := filepath.Join("..", "..", "workflows", "testdata", "etl_job_v1.json")

	stdout, stderr, code := syndb(t, "replay", bad, good)
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Equal(t, "FAIL  "+bad+"\n"+
		"      workflow: AnalyticsJob (ID job-636f4365-51e2-45e2-b0d1-8b1bb720532a)\n"+
		"      first mismatching event: 11 ActivityTaskScheduled\n"+
		"      reason: [TMPRL1100] nondeterministic workflow: history event is ActivityTaskScheduled (JobTargetsRenamed), "+
		"replay command is ScheduleActivityTask (JobTargets)\n"+
		"ok    "+good+"\n", stdout)
	require.Equal(t, "syndb: 1 history does not replay (see above)\n", stderr)

	stdout, stderr, code = syndb(t, "replay", "--verbose", bad)
	require.Equal(t, 1, code)
	require.Contains(t, stdout, "SDK error: [TMPRL1100] nondeterministic workflow: history event is ActivityTaskScheduled: (ActivityId:11")
	require.Contains(t, stderr, `msg="Workflow panic"`)
}

// TestReplayReportsVersionMismatch: a GetVersion marker with a version the
// code does not know is reported at the marker, with no stack unless
// --verbose (the SDK panics inside the workflow here).
func TestReplayReportsVersionMismatch(t *testing.T) {
	bad := alterHistory(t, t.TempDir(), "schema_sync_v2.json", func(events []map[string]any) {
		e := event(t, events, "5")
		details := e["markerRecordedEventAttributes"].(map[string]any)["details"].(map[string]any)
		p := details["version"].(map[string]any)["payloads"].([]any)[0].(map[string]any)
		p["data"] = "Nw==" // 7
	})
	stdout, stderr, code := syndb(t, "replay", bad)
	require.Equal(t, 1, code)
	require.Equal(t, "FAIL  "+bad+"\n"+
		"      workflow: SchemaSync (ID schema-sync-v4)\n"+
		"      first mismatching event: 5 MarkerRecorded\n"+
		"      reason: [TMPRL1100] Workflow code is too old to support version 7 for \"node-activities\" changeID. The maximum supported version is 1\n",
		stdout)
	require.NotContains(t, stdout+stderr, "goroutine")
	require.NotContains(t, stdout+stderr, "coroutine")

	_, stderr, code = syndb(t, "replay", "-v", bad)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "StackTrace=")
	require.Contains(t, stderr, "workflows.SchemaSync")
}

// TestReplayRecordedHistories: every recorded history replays.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "workflows", "testdata", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	stdout, stderr, code := syndb(t, append([]string{"replay"}, files...)...)
	require.Zero(t, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.NotContains(t, stdout, "FAIL")
}
