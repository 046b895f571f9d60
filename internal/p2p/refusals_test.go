package p2p

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
)

// lines collects the records a logger writes.
type lines struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *lines) Enabled(context.Context, slog.Level) bool { return true }
func (l *lines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
	return nil
}
func (l *lines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *lines) WithGroup(string) slog.Handler      { return l }

// attr returns the int value of key in record i.
func (l *lines) attr(t *testing.T, i int, key string) int64 {
	t.Helper()
	var v int64 = -1
	l.recs[i].Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.Int64()
		}
		return true
	})
	return v
}

func TestRefusalLogCounts(t *testing.T) {
	t.Parallel()
	out := &lines{}
	r := NewRefusalLog(slog.New(out), time.Minute)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	a, b := peer.ID("stranger-a"), peer.ID("stranger-b")

	for range 100 {
		r.Refused(a, HealthPing.ID)
	}
	require.Len(t, out.recs, 1, "one line for a peer's first minute")
	require.Equal(t, slog.LevelWarn, out.recs[0].Level)
	require.Equal(t, int64(0), out.attr(t, 0, "peer_refusals_unlogged"))

	r.Refused(b, SchemaSync.ID)
	require.Len(t, out.recs, 2, "another peer has its own line")

	now = now.Add(59 * time.Second)
	r.Refused(a, HealthPing.ID)
	require.Len(t, out.recs, 2, "still inside a's minute")
	now = now.Add(time.Second)
	r.Refused(a, HealthPing.ID)
	require.Len(t, out.recs, 3)
	require.Equal(t, int64(100), out.attr(t, 2, "peer_refusals_unlogged"), "99 after the first line, 1 at 59 s")
}

func TestRefusalLogBoundsLinesAcrossPeers(t *testing.T) {
	t.Parallel()
	out := &lines{}
	r := NewRefusalLog(slog.New(out), time.Minute)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	for i := range 1000 {
		r.Refused(peer.ID(fmt.Sprintf("stranger-%d", i)), Register.ID)
	}
	require.Len(t, out.recs, refusalLines, "a thousand strangers at once write %d lines", refusalLines)
	now = now.Add(time.Minute)
	r.Refused("late", Register.ID)
	require.Len(t, out.recs, refusalLines+1)
	require.Equal(t, int64(1000-refusalLines), out.attr(t, refusalLines, "other_refusals_unlogged"))
}
