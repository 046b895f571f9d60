package devstack

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// MinIO credentials of the dev stack.
const (
	MinIOUser     = "syndb"
	MinIOPassword = "syndb-dev-secret"
)

// MinIO is an S3 server.
type MinIO struct {
	Bin, Dir          string
	Port, ConsolePort int
	Out               io.Writer
	LogFile           string

	proc *Process
}

// Start starts the server and waits until it is live.
func (m *MinIO) Start(ctx context.Context) error {
	if err := os.MkdirAll(m.Dir, 0o755); err != nil {
		return fmt.Errorf("create minio dir: %w", err)
	}
	var err error
	m.proc, err = StartProcess(ctx, ProcessSpec{
		Name: "minio", Path: m.Bin,
		Args: []string{"server", m.Dir, "--quiet", "--address", fmt.Sprintf("127.0.0.1:%d", m.Port),
			"--console-address", fmt.Sprintf("127.0.0.1:%d", m.ConsolePort)},
		Env:     append(os.Environ(), "MINIO_ROOT_USER="+MinIOUser, "MINIO_ROOT_PASSWORD="+MinIOPassword, "MINIO_UPDATE=off"),
		LogFile: m.LogFile, Out: m.Out,
	})
	if err != nil {
		return err
	}
	return waitFor(ctx, m.proc, time.Minute, m.Ready)
}

// Ready checks that the server is live.
func (m *MinIO) Ready(ctx context.Context) error {
	return httpOK(ctx, fmt.Sprintf("http://127.0.0.1:%d/minio/health/live", m.Port))
}

// Stop stops the server.
func (m *MinIO) Stop(ctx context.Context) error {
	if m.proc == nil {
		return nil
	}
	return m.proc.Stop(ctx, 20*time.Second)
}

// Process returns the server process (nil before Start).
func (m *MinIO) Process() *Process { return m.proc }
