package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
)

// Temporal is the Temporal dev server (the `temporal` CLI's start-dev) with
// SQLite persistence and the web UI.
type Temporal struct {
	Bin, DBFile      string
	Port, UIPort     int
	SearchAttributes map[string]string
	Out              io.Writer
	LogFile          string

	proc *Process
}

// Start starts the server and waits until a client's health check passes
// and the UI answers. The dev server picks some internal ports itself; a
// start that loses one to another process is retried on a fresh database.
func (t *Temporal) Start(ctx context.Context) error {
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if err = t.start(ctx); !errors.Is(err, ErrExitedStarting) {
			return err
		}
		for _, f := range []string{t.DBFile, t.DBFile + "-wal", t.DBFile + "-shm"} {
			_ = os.Remove(f)
		}
	}
	return err
}

func (t *Temporal) start(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Dir(t.DBFile), 0o755); err != nil {
		return fmt.Errorf("create temporal dir: %w", err)
	}
	httpPort, err := FreePort()
	if err != nil {
		return err
	}
	metricsPort, err := FreePort()
	if err != nil {
		return err
	}
	args := []string{"server", "start-dev", "--ip", "127.0.0.1", "--port", strconv.Itoa(t.Port),
		"--ui-port", strconv.Itoa(t.UIPort), "--http-port", strconv.Itoa(httpPort),
		"--metrics-port", strconv.Itoa(metricsPort), "--db-filename", t.DBFile,
		// Every activity start, heartbeat and completion is a write, and
		// SQLite has one writer: in its default journal each commit syncs
		// the disk twice and the writes queue behind one another. A
		// write-ahead log synced at checkpoints keeps every committed run
		// across a crash of the server (not of the machine's power).
		"--sqlite-pragma", "journal_mode=WAL", "--sqlite-pragma", "synchronous=NORMAL",
		"--log-level", "error", "--namespace", "default"}
	keys := make([]string, 0, len(t.SearchAttributes))
	for k := range t.SearchAttributes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		args = append(args, "--search-attribute", k+"="+t.SearchAttributes[k])
	}
	t.proc, err = StartProcess(ctx, ProcessSpec{Name: "temporal", Path: t.Bin, Args: args, LogFile: t.LogFile, Out: t.Out})
	if err != nil {
		return err
	}
	hostPort := fmt.Sprintf("127.0.0.1:%d", t.Port)
	ui := fmt.Sprintf("http://127.0.0.1:%d/", t.UIPort)
	return waitFor(ctx, t.proc, 2*time.Minute, func(ctx context.Context) error {
		c, err := client.DialContext(ctx, client.Options{HostPort: hostPort, Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.CheckHealth(ctx, nil); err != nil {
			return err
		}
		// The default namespace answers once the server finished creating it.
		if _, err := c.ListOpenWorkflow(ctx, &workflowservice.ListOpenWorkflowExecutionsRequest{Namespace: "default", MaximumPageSize: 1}); err != nil {
			return err
		}
		return httpOK(ctx, ui)
	})
}

// Ready checks that the server passes a client's health check.
func (t *Temporal) Ready(ctx context.Context) error {
	c, err := client.DialContext(ctx, client.Options{HostPort: fmt.Sprintf("127.0.0.1:%d", t.Port),
		Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.CheckHealth(ctx, nil)
	return err
}

// Stop stops the server.
func (t *Temporal) Stop(ctx context.Context) error {
	if t.proc == nil {
		return nil
	}
	return t.proc.Stop(ctx, 20*time.Second)
}

// Process returns the server process (nil before Start).
func (t *Temporal) Process() *Process { return t.proc }
