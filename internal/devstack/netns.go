package devstack

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"golang.org/x/sys/unix"
)

// NetnsDial returns a dialer whose sockets are made inside the named
// network namespace (ip netns), so a process in the root namespace reaches
// a server listening on that namespace's loopback.
func NetnsDial(name string) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		done := make(chan result, 1)
		go func() {
			c, err := dialIn(ctx, name, addr)
			done <- result{c, err}
		}()
		r := <-done
		return r.c, r.err
	}
}

// dialIn dials addr from a thread switched into namespace name. The thread
// is given back to the runtime only if it returned to its namespace.
func dialIn(ctx context.Context, name, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("open own network namespace: %w", err)
	}
	defer func() { _ = self.Close() }()
	target, err := os.Open(filepath.Join("/var/run/netns", name))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("open network namespace %s: %w", name, err)
	}
	defer func() { _ = target.Close() }()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("enter network namespace %s: %w", name, err)
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	c, derr := d.DialContext(ctx, "tcp", addr)
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err == nil {
		runtime.UnlockOSThread()
	}
	if derr != nil {
		return nil, fmt.Errorf("dial %s in network namespace %s: %w", addr, name, derr)
	}
	return c, nil
}

// NetnsClickHouse opens database db of the ClickHouse at addr inside
// network namespace ns, as user default with password.
func NetnsClickHouse(ctx context.Context, ns, addr, password, db string) (driver.Conn, error) {
	dial := NetnsDial(ns)
	conn, err := ch.Open(&ch.Options{
		Addr: []string{addr}, Auth: ch.Auth{Database: db, Username: "default", Password: password},
		DialContext: dial, DialTimeout: 5 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %s in %s: %w", addr, ns, err)
	}
	if err := conn.Ping(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("ping clickhouse %s in %s: %w", addr, ns, err)
	}
	return conn, nil
}
