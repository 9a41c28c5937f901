// Package reply correlates requests with their replies by client token, the
// way AWS IoT Jobs replies on fixed topics: each request carries a fresh,
// crypto-random token; a Table holds one waiting entry per request in
// flight, keyed by what identifies its reply; the entry is removed when the
// reply arrives, or when the wait times out or is canceled, so nothing leaks;
// replies nobody waits for (unknown, duplicate or late) are dropped and
// counted.
package reply

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"sync"
	"sync/atomic"
)

// TokenLength is the length of the tokens NewToken returns: 22 characters,
// well under the 64 bytes AWS allows.
const TokenLength = 22

// NewToken returns a fresh client token: 16 crypto-random bytes in
// unpadded URL-safe base64 (22 characters).
func NewToken() string {
	var b [16]byte
	rand.Read(b[:]) // never returns an error (crypto/rand, Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Table is the set of requests waiting for a reply, keyed by K (for
// example the client token together with the request kind and job id).
// V is the reply. The zero value is ready to use; it is safe for concurrent
// use.
type Table[K comparable, V any] struct {
	mu      sync.Mutex
	waiting map[K]chan V
	dropped atomic.Uint64
}

// Wait is one waiting entry, from Register until a reply, Cancel or the end
// of Wait's context.
type Wait[K comparable, V any] struct {
	t   *Table[K, V]
	key K
	c   chan V
}

// Register adds a waiting entry for key and returns it. Register it before
// the request is sent, so a fast reply is not lost. It returns false if an
// entry with that key is already waiting (a reused token).
func (t *Table[K, V]) Register(key K) (*Wait[K, V], bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, dup := t.waiting[key]; dup {
		return nil, false
	}
	if t.waiting == nil {
		t.waiting = make(map[K]chan V)
	}
	c := make(chan V, 1)
	t.waiting[key] = c
	return &Wait[K, V]{t: t, key: key, c: c}, true
}

// Deliver hands v to the entry waiting for key and removes the entry. It
// reports false, and counts a drop, when nobody waits for key: an unknown,
// duplicate or late reply. It never blocks.
func (t *Table[K, V]) Deliver(key K, v V) bool {
	t.mu.Lock()
	c, ok := t.waiting[key]
	if ok {
		delete(t.waiting, key)
		// Send while holding the lock: a Wait whose context ends takes the
		// lock in Cancel before it looks at the channel a last time, so it
		// sees this reply instead of losing it after Deliver reported true.
		// Buffered and sent at most once: never blocks.
		c <- v
	}
	t.mu.Unlock()
	if !ok {
		t.dropped.Add(1)
	}
	return ok
}

// Len returns the number of entries waiting.
func (t *Table[K, V]) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.waiting)
}

// Dropped returns how many replies Deliver dropped since the table was made.
func (t *Table[K, V]) Dropped() uint64 { return t.dropped.Load() }

// Key returns the key the entry waits for.
func (w *Wait[K, V]) Key() K { return w.key }

// Wait blocks until the reply arrives or ctx ends. When ctx ends first the
// entry is removed and ctx's error returned; a reply arriving later is
// dropped. Give ctx a deadline: a reply that never comes (or an entry
// already canceled) otherwise blocks Wait forever.
func (w *Wait[K, V]) Wait(ctx context.Context) (V, error) {
	select {
	case v := <-w.c:
		return v, nil
	case <-ctx.Done():
		w.Cancel()
		// A reply may have been delivered between ctx ending and Cancel.
		select {
		case v := <-w.c:
			return v, nil
		default:
		}
		var zero V
		return zero, ctx.Err()
	}
}

// Cancel removes the entry if it is still waiting, for a request that was
// never sent or is abandoned. It is safe to call more than once.
func (w *Wait[K, V]) Cancel() {
	w.t.mu.Lock()
	if c, ok := w.t.waiting[w.key]; ok && c == w.c {
		delete(w.t.waiting, w.key)
	}
	w.t.mu.Unlock()
}
