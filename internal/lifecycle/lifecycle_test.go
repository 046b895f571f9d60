package lifecycle

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOnceRunsOnceAndShutdownWaits(t *testing.T) {
	t.Parallel()
	var o Once
	ctx, end, err := o.Begin(t.Context())
	require.NoError(t, err)
	_, _, err = o.Begin(t.Context())
	require.ErrorIs(t, err, ErrRun, "a second Run is refused")

	var finished atomic.Bool
	go func() {
		<-ctx.Done() // Run works until Shutdown cancels it
		finished.Store(true)
		end()
	}()
	o.Shutdown()
	require.True(t, finished.Load(), "Shutdown returned before Run did")
	o.Shutdown() // harmless twice
}

func TestShutdownBeforeRun(t *testing.T) {
	t.Parallel()
	var o Once
	o.Shutdown()
	_, _, err := o.Begin(context.Background())
	require.ErrorIs(t, err, ErrRun)
}

// TestStartErrIsNilOnlyForAStopWhileStarting: a failed start is an error
// unless the stop was asked for, which is logged.
func TestStartErrIsNilOnlyForAStopWhileStarting(t *testing.T) {
	t.Parallel()
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	failed := errors.New("connect postgres: refused")
	require.ErrorIs(t, StartErr(t.Context(), log, failed), failed, "a start that failed on its own")
	require.NoError(t, StartErr(t.Context(), log, nil))
	require.Empty(t, logged.String())

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.NoError(t, StartErr(ctx, log, context.Canceled), "a stop while starting is a clean stop")
	require.Contains(t, logged.String(), "stopped while starting")
	require.Contains(t, logged.String(), `interrupted="context canceled"`)
}
