// Package clickhouse holds ClickHouse connection helpers shared by hub and node.
//
// Everything here speaks the native protocol and works on ClickHouse 18.16 as
// well as current releases: no HTTP protocol, no bound arguments in
// INSERT … VALUES (inserts go through PrepareBatch with an explicit column list).
package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/syndb/federation/internal/config"
)

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// ValidIdent reports whether s is safe to use unquoted as a ClickHouse
// database, table or column name.
func ValidIdent(s string) bool { return identRe.MatchString(s) }

// Open connects to the server in c, creating c.Database first when it does
// not exist, and returns a pooled connection whose default database is
// c.Database. The caller closes it.
func Open(ctx context.Context, c config.ClickHouse) (driver.Conn, error) {
	return OpenPool(ctx, c, DefaultPool)
}

// Pool sizes a connection pool: at most MaxOpen connections, MaxIdle of
// them kept, and a caller waits at most Wait for one (then the call fails
// with ch.ErrAcquireConnTimeout).
type Pool struct {
	MaxOpen, MaxIdle int
	Wait             time.Duration
}

// DefaultPool is the pool of a process that talks to ClickHouse now and
// then (workers, node agents, tools).
var DefaultPool = Pool{MaxOpen: 8, MaxIdle: 4, Wait: 5 * time.Second}

// OpenPool is Open with the pool p.
func OpenPool(ctx context.Context, c config.ClickHouse, p Pool) (driver.Conn, error) {
	if !ValidIdent(c.Database) {
		return nil, fmt.Errorf("clickhouse database name %q is not a valid identifier", c.Database)
	}
	boot, err := dial(ctx, c, "default", DefaultPool)
	if err != nil {
		return nil, err
	}
	err = boot.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+c.Database)
	if cerr := boot.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("create clickhouse database %s on %s: %w", c.Database, c.Addr, err)
	}
	return dial(ctx, c, c.Database, p)
}

// Dial connects to the server in c with c.Database as the default database,
// which must exist: a read-only user (the hub's query user) cannot create it.
// The pool is p. The caller closes the connection.
func Dial(ctx context.Context, c config.ClickHouse, p Pool) (driver.Conn, error) {
	if !ValidIdent(c.Database) {
		return nil, fmt.Errorf("clickhouse database name %q is not a valid identifier", c.Database)
	}
	return dial(ctx, c, c.Database, p)
}

func dial(ctx context.Context, c config.ClickHouse, database string, p Pool) (driver.Conn, error) {
	conn, err := ch.Open(&ch.Options{
		Addr:            []string{c.Addr},
		Auth:            ch.Auth{Database: database, Username: c.User, Password: c.Password},
		DialTimeout:     p.Wait,
		MaxOpenConns:    p.MaxOpen,
		MaxIdleConns:    p.MaxIdle,
		ConnMaxLifetime: 30 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %s: %w", c.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("ping clickhouse %s: %w", c.Addr, err)
	}
	return conn, nil
}

// Ping checks that conn answers a trivial query and returns the round trip.
func Ping(ctx context.Context, conn driver.Conn) (time.Duration, error) {
	start := time.Now()
	if err := conn.Ping(ctx); err != nil {
		return 0, fmt.Errorf("ping clickhouse: %w", err)
	}
	return time.Since(start), nil
}

// IsCode reports whether err is a ClickHouse server exception with the code.
func IsCode(err error, code int32) bool {
	var ex *ch.Exception
	return errors.As(err, &ex) && ex.Code == code
}
