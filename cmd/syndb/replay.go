package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/syndb/federation/workflows"
)

func replayCmd() *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "replay FILE...",
		Short: "Replay workflow histories against this build's workflow code and report nondeterminism",
		Long: "Replay workflow histories, exported with `temporal workflow show --workflow-id ID --output json > FILE`,\n" +
			"against the workflow code of this build. A history the code would not reproduce (a change that breaks\n" +
			"runs in flight) is reported with its workflow, the first event that differs and the SDK's reason, and the\n" +
			"command fails. --verbose adds the SDK's whole message and the workflow's stack.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			failed := 0
			for _, f := range files {
				if err := replayFile(cmd.OutOrStdout(), cmd.ErrOrStderr(), f, verbose); err != nil {
					failed++
				}
			}
			if failed > 0 {
				return errors.New(plural(failed, "history does", "histories do") + " not replay (see above)")
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print the SDK's whole message and the workflow's stack for a history that does not replay")
	return cmd
}

// replayFile replays one history file and reports the outcome on out; with
// verbose, the SDK's own log (the panic and its stack) goes to errOut.
func replayFile(out, errOut io.Writer, path string, verbose bool) error {
	hist, err := readHistory(path)
	if err != nil {
		fmt.Fprintf(out, "FAIL  %s\n      %v\n", path, err)
		return err
	}
	logOut := io.Discard
	if verbose {
		logOut = errOut
	}
	log := tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelWarn})))
	r := worker.NewWorkflowReplayer()
	workflows.Register(r)
	wfType, wfID := execution(hist)
	err = r.ReplayWorkflowHistoryWithOptions(log, hist, worker.ReplayWorkflowHistoryOptions{
		OriginalExecution: workflow.Execution{ID: wfID},
	})
	if err == nil {
		fmt.Fprintf(out, "ok    %s\n", path)
		return nil
	}
	fmt.Fprintf(out, "FAIL  %s\n", path)
	fmt.Fprintf(out, "      workflow: %s (ID %s)\n", wfType, wfID)
	if ev := mismatchedEvent(hist, err.Error()); ev != nil {
		fmt.Fprintf(out, "      first mismatching event: %d %s\n", ev.GetEventId(), eventName(ev))
	} else {
		fmt.Fprintf(out, "      first mismatching event: none in the history (the code issues a command it lacks)\n")
	}
	fmt.Fprintf(out, "      reason: %s\n", shortReason(err.Error()))
	if verbose {
		fmt.Fprintf(out, "      SDK error: %v\n", err)
	}
	return err
}

func readHistory(path string) (*historypb.History, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	defer func() { _ = f.Close() }()
	hist, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	if err != nil {
		return nil, fmt.Errorf("read history %s: %w", path, err)
	}
	return hist, nil
}

// execution returns the workflow type and ID a history records.
func execution(h *historypb.History) (wfType, id string) {
	evs := h.GetEvents()
	if len(evs) == 0 {
		return "?", "?"
	}
	a := evs[0].GetWorkflowExecutionStartedEventAttributes()
	wfType, id = a.GetWorkflowType().GetName(), a.GetWorkflowId()
	if wfType == "" {
		wfType = "?"
	}
	if id == "" {
		id = "not recorded"
	}
	return wfType, id
}

// eventName is an event's type as the SDK prints it (ActivityTaskScheduled).
func eventName(e *historypb.HistoryEvent) string {
	name := e.GetEventType().String()
	if !strings.HasPrefix(name, "EVENT_TYPE_") {
		return name
	}
	var b strings.Builder
	for _, w := range strings.Split(strings.TrimPrefix(name, "EVENT_TYPE_"), "_") {
		if w != "" {
			b.WriteString(w[:1] + strings.ToLower(w[1:]))
		}
	}
	return b.String()
}

var (
	// eventInReason finds the history event an SDK nondeterminism message
	// names: "history event is ActivityTaskScheduled: (ActivityId:11, …)",
	// "missing replay command for TimerStarted: (TimerId:3, …)".
	eventInReason = regexp.MustCompile(`(?:history event is|missing replay command for) ([A-Za-z]+): \(`)
	activityID    = regexp.MustCompile(`^\(ActivityId:([^,)]*)`)
	timerID       = regexp.MustCompile(`^\(TimerId:([^,)]*)`)
	// changeIDInReason finds the change ID of a GetVersion mismatch.
	changeIDInReason = regexp.MustCompile(`for "([^"]+)" change`)
)

// mismatchedEvent finds the history event the SDK's reason is about, nil
// when the reason names none (an extra command the history lacks).
func mismatchedEvent(h *historypb.History, reason string) *historypb.HistoryEvent {
	if m := changeIDInReason.FindStringSubmatch(reason); m != nil {
		for _, e := range h.GetEvents() {
			if changeID(e) == m[1] {
				return e
			}
		}
	}
	loc := eventInReason.FindStringSubmatchIndex(reason)
	if loc == nil {
		return nil
	}
	name, rest := reason[loc[2]:loc[3]], reason[loc[1]-1:]
	var aid, tid string
	if m := activityID.FindStringSubmatch(rest); m != nil {
		aid = m[1]
	}
	if m := timerID.FindStringSubmatch(rest); m != nil {
		tid = m[1]
	}
	var first *historypb.HistoryEvent
	for _, e := range h.GetEvents() {
		if eventName(e) != name {
			continue
		}
		switch {
		case aid != "" && e.GetActivityTaskScheduledEventAttributes().GetActivityId() == aid,
			tid != "" && e.GetTimerStartedEventAttributes().GetTimerId() == tid:
			return e
		case first == nil:
			first = e
		}
	}
	return first
}

// changeID is the change ID of a GetVersion marker, "" for other events.
func changeID(e *historypb.HistoryEvent) string {
	p := e.GetMarkerRecordedEventAttributes().GetDetails()["change-id"]
	if p == nil || len(p.GetPayloads()) == 0 {
		return ""
	}
	var id string
	if err := converter.GetDefaultDataConverter().FromPayload(p.GetPayloads()[0], &id); err != nil {
		return ""
	}
	return id
}

// shortReason is the SDK's message with each event and command dump cut to
// its type and name: "history event is ActivityTaskScheduled (JobTargetsRenamed),
// replay command is ScheduleActivityTask (JobTargets)".
func shortReason(reason string) string {
	var b strings.Builder
	for i := 0; i < len(reason); i++ {
		if !strings.HasPrefix(reason[i:], ": (") {
			b.WriteByte(reason[i])
			continue
		}
		depth, j := 0, i+2
		for ; j < len(reason); j++ {
			if reason[j] == '(' {
				depth++
			} else if reason[j] == ')' {
				depth--
				if depth == 0 {
					break
				}
			}
		}
		if name := dumpName(reason[i+2 : min(j+1, len(reason))]); name != "" {
			b.WriteString(" (" + name + ")")
		}
		i = j
	}
	return b.String()
}

var nameInDump = regexp.MustCompile(`(?:ActivityType|WorkflowType|MarkerName):\(?(?:Name:)?([^,)]+)|TimerId:([^,)]+)`)

// dumpName is the identifying name in an SDK event or command dump.
func dumpName(dump string) string {
	m := nameInDump.FindStringSubmatch(dump)
	if m == nil {
		return ""
	}
	if m[1] != "" {
		return m[1]
	}
	return "timer " + m[2]
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
