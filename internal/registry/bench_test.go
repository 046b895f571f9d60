package registry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syndb/federation/internal/domain"
)

const (
	benchClusters = 1000
	benchReaders  = 8
	benchRewrite  = time.Millisecond
)

// staticLoader always loads the same clusters.
type staticLoader []domain.Cluster

func (l staticLoader) Clusters(context.Context, bool) ([]domain.Cluster, error) {
	return l, nil
}

// rwMutexMap is the baseline: a map guarded by a sync.RWMutex. Like a
// Registry, it builds the new set off to the side and only holds the write
// lock to swap it in, so the comparison measures the read path alone.
type rwMutexMap struct {
	mu sync.RWMutex
	m  map[string]domain.Cluster
}

func (m *rwMutexMap) get(name string) (domain.Cluster, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, ok := m.m[name]
	return c, ok
}

func (m *rwMutexMap) replace(clusters []domain.Cluster) {
	next := make(map[string]domain.Cluster, len(clusters))
	for _, c := range clusters {
		next[c.Name] = cloneCluster(c)
	}
	m.mu.Lock()
	m.m = next
	m.mu.Unlock()
}

// BenchmarkSnapshotReads compares lookups in a Registry with lookups in an
// RWMutex-guarded map, over the same 1,000 clusters: benchReaders goroutines
// each do b.N lookups of random names while one writer replaces the whole
// set every millisecond. ns/op is thus the wall time of one round of
// benchReaders concurrent lookups; reads/s counts every reader's lookups.
func BenchmarkSnapshotReads(b *testing.B) {
	clusters := make([]domain.Cluster, benchClusters)
	names := make([]string, benchClusters)
	for i := range clusters {
		names[i] = fmt.Sprintf("lab-%04d", i)
		clusters[i] = domain.Cluster{
			Name: names[i], PeerID: "peer-" + names[i], Addrs: []string{"/ip4/10.0.0.1/tcp/4001"},
			Status: "active", Health: "healthy",
		}
	}

	b.Run("atomic-snapshot", func(b *testing.B) {
		r, err := New(b.Context(), staticLoader(clusters), nil)
		if err != nil {
			b.Fatal(err)
		}
		benchReads(b, names,
			func(name string) bool { _, ok := r.Snapshot().Get(name); return ok },
			func() error { return r.Refresh(b.Context()) })
	})
	b.Run("rwmutex-map", func(b *testing.B) {
		var m rwMutexMap
		m.replace(clusters)
		benchReads(b, names,
			func(name string) bool { _, ok := m.get(name); return ok },
			func() error { m.replace(clusters); return nil })
	})
}

// benchReads runs benchReaders goroutines doing b.N calls of get each, while
// rewrite runs every benchRewrite, and reports the reads per second.
func benchReads(b *testing.B, names []string, get func(name string) bool, rewrite func() error) {
	stop := make(chan struct{})
	writeErr := make(chan error, 1)
	var writer sync.WaitGroup
	writer.Go(func() {
		t := time.NewTicker(benchRewrite)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if err := rewrite(); err != nil {
					writeErr <- err
					return
				}
			}
		}
	})

	var misses atomic.Int64
	var readers sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := range benchReaders {
		readers.Go(func() {
			rng := rand.New(rand.NewPCG(1, uint64(i)))
			var miss int64
			for range b.N {
				if !get(names[rng.IntN(len(names))]) {
					miss++
				}
			}
			misses.Add(miss)
		})
	}
	readers.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(stop)
	writer.Wait()

	select {
	case err := <-writeErr:
		b.Fatal(err)
	default:
	}
	if n := misses.Load(); n != 0 {
		b.Fatalf("%d lookups missed", n)
	}
	b.ReportMetric(float64(benchReaders*b.N)/elapsed.Seconds(), "reads/s")
}
