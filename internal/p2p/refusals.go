package p2p

import (
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"
)

// RefusalLog logs refused streams without letting peers flood the log: at
// most one line per peer per window, which counts the peer's refusals since
// its previous line, and at most refusalLines lines per window in all; the
// refusals of peers beyond that are counted in the next line written.
type RefusalLog struct {
	log    *slog.Logger
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	peers map[peer.ID]*refusalCount
	lines *rate.Limiter
	// unlogged counts refusals of peers that found the line budget spent.
	unlogged int
}

// refusalLines is how many lines a RefusalLog writes per window at most.
const refusalLines = 10

type refusalCount struct {
	logged     time.Time // when the peer's last line was written
	suppressed int       // refusals since, not logged
}

// NewRefusalLog returns a RefusalLog writing to log, one line per peer per
// window.
func NewRefusalLog(log *slog.Logger, window time.Duration) *RefusalLog {
	return &RefusalLog{log: log, window: window, now: time.Now, peers: map[peer.ID]*refusalCount{},
		lines: rate.NewLimiter(rate.Every(window/refusalLines), refusalLines)}
}

// Refused records that a stream of p on proto was refused, and logs it
// unless p's previous line is younger than the window.
func (r *RefusalLog) Refused(p peer.ID, proto protocol.ID) {
	now := r.now()
	r.mu.Lock()
	c, ok := r.peers[p]
	if ok && now.Sub(c.logged) < r.window {
		c.suppressed++
		r.mu.Unlock()
		return
	}
	if !r.lines.AllowN(now, 1) {
		r.unlogged++
		r.mu.Unlock()
		return
	}
	if !ok {
		r.evict(now)
		c = &refusalCount{}
		r.peers[p] = c
	}
	suppressed, others := c.suppressed, r.unlogged
	c.logged, c.suppressed, r.unlogged = now, 0, 0
	r.mu.Unlock()
	r.log.Warn("refused stream from unknown peer", "peer", p, "protocol", proto,
		"peer_refusals_unlogged", suppressed, "other_refusals_unlogged", others, "window", r.window)
}

// evict forgets peers whose window has passed when the table is full.
func (r *RefusalLog) evict(now time.Time) {
	if len(r.peers) < maxTracked {
		return
	}
	for p, c := range r.peers {
		if now.Sub(c.logged) >= r.window {
			delete(r.peers, p)
		}
	}
}
