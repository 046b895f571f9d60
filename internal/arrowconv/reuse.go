package arrowconv

import (
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// reuseKeep bounds the freed buffers a reuse allocator keeps.
const reuseKeep = 32

// reuse is a memory.Allocator over mem that keeps the buffers Arrow frees
// and hands them out again, as they are: a block reader's columns decode
// into buffers of about the same sizes block after block, and fill every
// byte they are given, so reusing them saves both the allocation and the
// zeroing. It keeps at most reuseKeep buffers; close gives them back to mem
// and makes every later Free go straight to mem. Safe for concurrent use:
// a batch is released on another goroutine than the one that decodes.
type reuse struct {
	mem    memory.Allocator
	mu     sync.Mutex
	free   [][]byte      // kept buffers, each at its full capacity
	size   map[*byte]int // the length mem allocated each live or kept buffer with
	closed bool
}

func newReuse(mem memory.Allocator) *reuse {
	return &reuse{mem: mem, size: make(map[*byte]int)}
}

// Allocate returns a kept buffer of at least size bytes and at most about
// twice that, or a new one from mem. Its contents are undefined.
func (p *reuse) Allocate(size int) []byte {
	if size <= 0 {
		return p.mem.Allocate(size)
	}
	p.mu.Lock()
	best := -1
	for i, b := range p.free {
		if c := cap(b); c >= size && c <= 2*size+64 && (best < 0 || c < cap(p.free[best])) {
			best = i
		}
	}
	if best >= 0 {
		b := p.free[best]
		p.free[best] = p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
		p.mu.Unlock()
		return b[:size]
	}
	p.mu.Unlock()
	b := p.mem.Allocate(size)
	if cap(b) > 0 {
		p.mu.Lock()
		p.size[base(b)] = len(b)
		p.mu.Unlock()
	}
	return b
}

// Reallocate returns b, or a buffer of size bytes that starts with b's.
func (p *reuse) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) {
		return b[:size]
	}
	nb := p.Allocate(size)
	copy(nb, b)
	p.Free(b)
	return nb
}

// Free keeps b for reuse, or gives it back to mem.
func (p *reuse) Free(b []byte) {
	if cap(b) == 0 {
		return
	}
	p.mu.Lock()
	n, ours := p.size[base(b)]
	if ours && !p.closed && len(p.free) < reuseKeep {
		p.free = append(p.free, b[:cap(b)])
		p.mu.Unlock()
		return
	}
	delete(p.size, base(b))
	p.mu.Unlock()
	if ours {
		b = b[:n]
	}
	p.mem.Free(b)
}

// close gives every kept buffer back to mem; buffers freed later go to mem
// at once.
func (p *reuse) close() {
	p.mu.Lock()
	kept := p.free
	p.free, p.closed = nil, true
	for i, b := range kept {
		kept[i] = b[:p.size[base(b)]]
		delete(p.size, base(b))
	}
	p.mu.Unlock()
	for _, b := range kept {
		p.mem.Free(b)
	}
}

// base is the address of b's first byte, which names its allocation.
func base(b []byte) *byte { return unsafe.SliceData(b[:1]) }
