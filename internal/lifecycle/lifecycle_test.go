package lifecycle

import (
	"context"
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
