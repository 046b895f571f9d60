package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
)

// runBreakdown is where a workflow run's time went, read from its history.
type runBreakdown struct {
	// ScheduleToStart and StartToClose are each activity of type's waits
	// for a worker and its runs, in milliseconds.
	ScheduleToStart, StartToClose []float64
	// WorkflowTasks is the run's workflow tasks; WorkflowTaskWaitMS their
	// time from schedule to start (waiting for a worker), WorkflowTaskRunMS
	// from start to completion, each summed.
	WorkflowTasks                         int
	WorkflowTaskWaitMS, WorkflowTaskRunMS float64
	// Span is the run's first event to its last.
	Span time.Duration
}

// breakdown reads the history of a finished run and collects the timings
// of its activities of the types named.
func breakdown(tb testing.TB, wid, runID string, activities ...string) runBreakdown {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), time.Minute)
	defer cancel()
	it := temporalClient(tb).GetWorkflowHistory(ctx, wid, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var evs []*historypb.HistoryEvent
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(tb, err)
		evs = append(evs, ev)
	}
	require.NotEmpty(tb, evs)
	at := map[int64]time.Time{}
	kind := map[int64]string{}
	var out runBreakdown
	for _, ev := range evs {
		t := ev.GetEventTime().AsTime()
		at[ev.GetEventId()] = t
		switch {
		case ev.GetActivityTaskScheduledEventAttributes() != nil:
			kind[ev.GetEventId()] = ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
		case ev.GetActivityTaskStartedEventAttributes() != nil:
			a := ev.GetActivityTaskStartedEventAttributes()
			if slices.Contains(activities, kind[a.GetScheduledEventId()]) {
				out.ScheduleToStart = append(out.ScheduleToStart, ms(t.Sub(at[a.GetScheduledEventId()])))
			}
		case ev.GetActivityTaskCompletedEventAttributes() != nil:
			a := ev.GetActivityTaskCompletedEventAttributes()
			if slices.Contains(activities, kind[a.GetScheduledEventId()]) {
				out.StartToClose = append(out.StartToClose, ms(t.Sub(at[a.GetStartedEventId()])))
			}
		case ev.GetWorkflowTaskStartedEventAttributes() != nil:
			a := ev.GetWorkflowTaskStartedEventAttributes()
			out.WorkflowTaskWaitMS += ms(t.Sub(at[a.GetScheduledEventId()]))
		case ev.GetWorkflowTaskCompletedEventAttributes() != nil:
			a := ev.GetWorkflowTaskCompletedEventAttributes()
			out.WorkflowTasks++
			out.WorkflowTaskRunMS += ms(t.Sub(at[a.GetStartedEventId()]))
		}
	}
	out.Span = evs[len(evs)-1].GetEventTime().AsTime().Sub(evs[0].GetEventTime().AsTime())
	return out
}

// report adds the breakdown to b's metrics.
func (r runBreakdown) report(b *testing.B) {
	b.ReportMetric(quantile(r.ScheduleToStart, 0.5), "sched-to-start-p50-ms")
	b.ReportMetric(quantile(r.ScheduleToStart, 1), "sched-to-start-max-ms")
	b.ReportMetric(quantile(r.StartToClose, 0.5), "start-to-close-p50-ms")
	b.ReportMetric(quantile(r.StartToClose, 1), "start-to-close-max-ms")
	b.ReportMetric(float64(r.WorkflowTasks), "workflow-tasks")
	b.ReportMetric(r.WorkflowTaskWaitMS, "workflow-task-wait-ms")
	b.ReportMetric(r.WorkflowTaskRunMS, "workflow-task-run-ms")
	b.ReportMetric(r.Span.Seconds(), "history-span-s")
	b.ReportMetric(float64(len(r.StartToClose)), "activities")
}

// quantile is the q-quantile of vs (nearest rank); 0 for none.
func quantile(vs []float64, q float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// profileWorker records a CPU profile of the hub's worker over the next
// seconds, into $SYNDB_BENCH_PROFILE_DIR/name.pprof (`go tool pprof` reads
// it); without that variable it does nothing. wait waits for the profile.
func profileWorker(tb testing.TB, name string, seconds int) (wait func()) {
	tb.Helper()
	dir := os.Getenv("SYNDB_BENCH_PROFILE_DIR")
	addr := fed.Env["SYNDB_WORKER_DEBUG_ADDR"]
	if dir == "" || addr == "" {
		return func() {}
	}
	done := make(chan error, 1)
	go func() {
		u := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds)
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u, nil)
		if err != nil {
			done <- err
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- err
			return
		}
		defer func() { _ = resp.Body.Close() }()
		data, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			done <- fmt.Errorf("status %d: %w", resp.StatusCode, err)
			return
		}
		done <- os.WriteFile(filepath.Join(dir, name+".pprof"), data, 0o644)
	}()
	return func() {
		if err := <-done; err != nil {
			tb.Logf("worker profile %s: %v", name, err)
		}
	}
}

// waitNoRunsBut waits until no workflow runs but the one of ID keep.
func waitNoRunsBut(tb testing.TB, keep string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), 10*time.Minute)
	defer cancel()
	tc := temporalClient(tb)
	require.NoError(tb, pollUntil(ctx, func() error {
		resp, err := tc.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
			Query: fmt.Sprintf("ExecutionStatus = 'Running' AND WorkflowId != '%s'", keep),
		})
		if err != nil {
			return err
		}
		if n := resp.GetCount(); n > 0 {
			return fmt.Errorf("%d workflow runs still running", n)
		}
		return nil
	}))
}
