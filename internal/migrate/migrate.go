// Package migrate applies numbered ClickHouse migrations and keeps a ledger of
// them in every warehouse, hub and node alike.
//
// A migration is recorded in the ledger only after all its statements
// succeeded, and every statement is safe to re-run after a partial apply:
// CREATE … IF NOT EXISTS, and ADD/DROP COLUMN guarded by a look at
// system.columns (ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS). So a
// warehouse stopped in the middle of a migration resumes on the next attempt.
package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// LedgerTable is the table, in the warehouse's database, that records applied migrations.
const LedgerTable = "schema_migrations"

// Migration is one numbered, immutable ClickHouse DDL script.
type Migration struct {
	Version  int    `json:"version"`
	Name     string `json:"name"`
	Checksum string `json:"checksum"`
	SQL      string `json:"sql"`
}

// Applied is one ledger row.
type Applied struct {
	Version   int           `json:"version"`
	Name      string        `json:"name"`
	Checksum  string        `json:"checksum"`
	AppliedAt time.Time     `json:"applied_at"`
	Duration  time.Duration `json:"duration"`
}

// Result reports what Apply did.
type Result struct {
	From    int       `json:"from"`
	To      int       `json:"to"`
	Applied []Applied `json:"applied"`
}

// ErrDrift means the ledger disagrees with the migration files: a version was
// applied with another checksum, or the ledger holds a version the files lack.
var ErrDrift = errors.New("schema drift")

// DriftError names the version at which a ledger and the files disagree.
type DriftError struct {
	Version int
	Reason  string
}

func (e *DriftError) Error() string {
	return fmt.Sprintf("schema drift at version %d: %s", e.Version, e.Reason)
}

// Is makes errors.Is(err, ErrDrift) true for a *DriftError.
func (e *DriftError) Is(target error) bool { return target == ErrDrift }

var driftRe = regexp.MustCompile(`schema drift at version (\d+): (.*)$`)

// ParseDrift reads back a DriftError from its message, as it travels from a
// node to the hub inside a remote error.
func ParseDrift(msg string) (*DriftError, bool) {
	m := driftRe.FindStringSubmatch(msg)
	if m == nil {
		return nil, false
	}
	v, err := strconv.Atoi(m[1])
	if err != nil {
		return nil, false
	}
	return &DriftError{Version: v, Reason: m[2]}, true
}

var fileRe = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Load reads the migrations in dir of fsys: files named NNNN_name.sql,
// numbered contiguously from 1.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		m := fileRe.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		out = append(out, New(v, m[2], string(body)))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migrations must be numbered 1..n without gaps: found %04d where %04d was expected", m.Version, i+1)
		}
	}
	return out, nil
}

// New builds a Migration, computing its checksum.
func New(version int, name, sql string) Migration {
	sum := sha256.Sum256([]byte(sql))
	return Migration{Version: version, Name: name, Checksum: hex.EncodeToString(sum[:]), SQL: sql}
}

// Verify checks that every migration's checksum matches its SQL and that the
// versions run 1..n; a node calls it on what the hub sent before applying.
func Verify(migs []Migration) error {
	for i, m := range migs {
		if m.Version != i+1 {
			return fmt.Errorf("migration %d is out of order (expected %d)", m.Version, i+1)
		}
		if New(m.Version, m.Name, m.SQL).Checksum != m.Checksum {
			return fmt.Errorf("migration %d (%s): checksum does not match its SQL", m.Version, m.Name)
		}
	}
	return nil
}

// Statements splits a migration into its statements, dropping comment lines.
// Statements end with ';' at the end of a line.
func Statements(sql string) []string {
	var out []string
	var cur strings.Builder
	for line := range strings.SplitSeq(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			if s := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"); s != "" {
				out = append(out, s)
			}
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// EnsureLedger creates the ledger table when it is missing.
func EnsureLedger(ctx context.Context, conn driver.Conn) error {
	err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+LedgerTable+` (
    version     UInt32,
    name        String,
    checksum    String,
    applied_at  DateTime,
    duration_ms UInt64
) ENGINE = MergeTree() ORDER BY version`)
	if err != nil {
		return fmt.Errorf("create ledger table: %w", err)
	}
	return nil
}

// Ledger returns the ledger rows in version order.
func Ledger(ctx context.Context, conn driver.Conn) ([]Applied, error) {
	if err := EnsureLedger(ctx, conn); err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, `SELECT version, name, checksum, applied_at, duration_ms FROM `+LedgerTable+` ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Applied
	for rows.Next() {
		var (
			v      uint32
			a      Applied
			durMS  uint64
			at     time.Time
			name   string
			chksum string
		)
		if err := rows.Scan(&v, &name, &chksum, &at, &durMS); err != nil {
			return nil, fmt.Errorf("scan ledger: %w", err)
		}
		a.Version, a.Name, a.Checksum, a.AppliedAt = int(v), name, chksum, at.UTC()
		a.Duration = time.Duration(durMS) * time.Millisecond
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	return out, nil
}

// CheckDrift compares a ledger with the migrations and returns a *DriftError
// for the first disagreement, or nil. The ledger is the highest contiguous
// prefix of versions; a version applied twice is drift too.
func CheckDrift(ledger []Applied, migs []Migration) error {
	for i, a := range ledger {
		if a.Version != i+1 {
			return &DriftError{Version: a.Version, Reason: fmt.Sprintf("ledger holds version %d where %d was expected (gap or duplicate)", a.Version, i+1)}
		}
		if a.Version > len(migs) {
			return &DriftError{Version: a.Version, Reason: fmt.Sprintf("ledger holds unknown migration %q (newest known is %d)", a.Name, len(migs))}
		}
		m := migs[a.Version-1]
		if a.Checksum != m.Checksum {
			return &DriftError{Version: a.Version, Reason: fmt.Sprintf("checksum %.12s in ledger, %.12s in migration %s", a.Checksum, m.Checksum, m.Name)}
		}
	}
	return nil
}

// Apply brings the warehouse behind conn to target (all of migs when target
// is 0), applying each missing migration in order and recording it in the
// ledger once it succeeded. It refuses, touching nothing, when the ledger
// drifts from migs. The caller serialises Apply per warehouse.
func Apply(ctx context.Context, conn driver.Conn, migs []Migration, target int) (Result, error) {
	if target == 0 || target > len(migs) {
		target = len(migs)
	}
	if err := Verify(migs); err != nil {
		return Result{}, err
	}
	ledger, err := Ledger(ctx, conn)
	if err != nil {
		return Result{}, err
	}
	if err := CheckDrift(ledger, migs); err != nil {
		return Result{From: len(ledger), To: len(ledger)}, err
	}
	res := Result{From: len(ledger), To: len(ledger)}
	if len(ledger) >= target {
		// Already there or past it: migrations only go forward.
		return res, nil
	}
	for _, m := range migs[len(ledger):target] {
		start := time.Now()
		for i, stmt := range Statements(m.SQL) {
			if err := execIdempotent(ctx, conn, stmt); err != nil {
				return res, fmt.Errorf("migration %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		a := Applied{Version: m.Version, Name: m.Name, Checksum: m.Checksum, AppliedAt: time.Now().UTC().Truncate(time.Second), Duration: time.Since(start)}
		if err := record(ctx, conn, a); err != nil {
			return res, err
		}
		res.Applied = append(res.Applied, a)
		res.To = m.Version
	}
	return res, nil
}

// Version returns the highest version in the ledger (0 when empty).
func Version(ctx context.Context, conn driver.Conn) (int, error) {
	ledger, err := Ledger(ctx, conn)
	if err != nil {
		return 0, err
	}
	return len(ledger), nil
}

func record(ctx context.Context, conn driver.Conn, a Applied) error {
	batch, err := conn.PrepareBatch(ctx, `INSERT INTO `+LedgerTable+` (version, name, checksum, applied_at, duration_ms)`)
	if err != nil {
		return fmt.Errorf("record migration %d: %w", a.Version, err)
	}
	if err := batch.Append(uint32(a.Version), a.Name, a.Checksum, a.AppliedAt, uint64(a.Duration.Milliseconds())); err != nil {
		_ = batch.Abort()
		return fmt.Errorf("record migration %d: %w", a.Version, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("record migration %d: %w", a.Version, err)
	}
	return nil
}

var (
	addColumnRe  = regexp.MustCompile(`(?is)^\s*ALTER\s+TABLE\s+([A-Za-z_][A-Za-z0-9_]*)\s+ADD\s+COLUMN\s+([A-Za-z_][A-Za-z0-9_]*)\s`)
	dropColumnRe = regexp.MustCompile(`(?is)^\s*ALTER\s+TABLE\s+([A-Za-z_][A-Za-z0-9_]*)\s+DROP\s+COLUMN\s+([A-Za-z_][A-Za-z0-9_]*)\s*$`)
)

// execIdempotent runs stmt, skipping an ADD COLUMN whose column exists and a
// DROP COLUMN whose column is gone: the states a partial apply leaves.
func execIdempotent(ctx context.Context, conn driver.Conn, stmt string) error {
	if m := addColumnRe.FindStringSubmatch(stmt); m != nil {
		exists, err := columnExists(ctx, conn, m[1], m[2])
		if err != nil || exists {
			return err
		}
	}
	if m := dropColumnRe.FindStringSubmatch(stmt); m != nil {
		exists, err := columnExists(ctx, conn, m[1], m[2])
		if err != nil || !exists {
			return err
		}
	}
	return conn.Exec(ctx, stmt)
}

func columnExists(ctx context.Context, conn driver.Conn, table, column string) (bool, error) {
	// Identifiers come from the regexps above, which admit only [A-Za-z0-9_].
	var n uint64
	q := fmt.Sprintf(`SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = '%s' AND name = '%s'`, table, column)
	if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
		return false, fmt.Errorf("look up column %s.%s: %w", table, column, err)
	}
	return n > 0, nil
}
