package workflows

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// schedule is a Temporal Schedule that starts one workflow at an interval.
type schedule struct {
	id, note string
	// workflowID is the runs' ID, to which Temporal appends the time.
	workflowID, workflow string
	params               any
}

// ensureSchedule creates s to run every interval, or, when it exists,
// brings its interval to this one (leaving it alone when it is already).
// Runs that would overlap a running one are skipped.
func ensureSchedule(ctx context.Context, c client.Client, s schedule, every time.Duration) error {
	if every <= 0 {
		return fmt.Errorf("schedule %s: interval %s must be positive", s.id, every)
	}
	sc := c.ScheduleClient()
	_, err := sc.Create(ctx, client.ScheduleOptions{
		ID:      s.id,
		Spec:    client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}},
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Note:    s.note,
		Action: &client.ScheduleWorkflowAction{
			ID:                    s.workflowID,
			Workflow:              s.workflow,
			Args:                  []any{s.params},
			TaskQueue:             TaskQueue,
			TypedSearchAttributes: temporal.NewSearchAttributes(OutcomeKey.ValueSet(OutcomeRunning)),
		},
	})
	if err == nil {
		return nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return fmt.Errorf("create schedule %s: %w", s.id, err)
	}
	err = sc.GetHandle(ctx, s.id).Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			spec := in.Description.Schedule.Spec
			if spec != nil && len(spec.Intervals) == 1 && spec.Intervals[0].Every == every && spec.Intervals[0].Offset == 0 {
				return nil, temporal.ErrSkipScheduleUpdate
			}
			sched := in.Description.Schedule
			sched.Spec = &client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
			return &client.ScheduleUpdate{Schedule: &sched}, nil
		},
	})
	if err != nil {
		return fmt.Errorf("update schedule %s: %w", s.id, err)
	}
	return nil
}
