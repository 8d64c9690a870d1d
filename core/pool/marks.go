package pool

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"iter"
	"slices"
	"sort"
	"strconv"
)

// Marks is a set of blobs with a mark each, sized for millions: 28 bytes
// a blob (the binary SHA-1 and the size) and a bit, in chunks of 32,768
// that never move once full, so that filling it never holds two copies of
// the whole (a growing slice would, for a moment). It serves every mark and sweep, and every "which of
// these does the other side lack": fill it with Add, Seal it once, then
// Mark and read it back with All.
type Marks struct {
	chunks   [][]refKey
	n        int // keys added, the same blob added twice included
	distinct int
	bits     []uint64
	sealed   bool
}

// marksChunk is how many keys a chunk holds (896 KiB).
const marksChunk = 1 << 15

type refKey [28]byte

func keyOf(b Blob) (refKey, bool) {
	var k refKey
	if b.Size < 0 || !hexKey(&k, b.SHA1) {
		return k, false
	}
	binary.BigEndian.PutUint64(k[20:], uint64(b.Size))
	return k, true
}

// hexKey decodes a SHA-1 of 40 lower-case hex digits into k's first 20
// bytes; false for anything else.
func hexKey[T string | []byte](k *refKey, s T) bool {
	if len(s) != 40 {
		return false
	}
	for i := range 20 {
		hi, ok1 := hexVal(s[2*i])
		lo, ok2 := hexVal(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		k[i] = hi<<4 | lo
	}
	return true
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// parseRef reads a POOL_REFS line, "<sha1> <size>", into its key.
func parseRef(line []byte) (refKey, bool) {
	var k refKey
	if len(line) < 42 || line[40] != ' ' || !hexKey(&k, line[:40]) {
		return k, false
	}
	n, err := strconv.ParseInt(string(line[41:]), 10, 64)
	if err != nil || n < 0 {
		return k, false
	}
	binary.BigEndian.PutUint64(k[20:], uint64(n))
	return k, true
}

func (k *refKey) blob() Blob {
	return Blob{SHA1: hex.EncodeToString(k[:20]), Size: int64(binary.BigEndian.Uint64(k[20:]))}
}

// Add puts b in the set; a name that is no blob's is left out. It panics
// once the set is sealed.
func (m *Marks) Add(b Blob) {
	if m.sealed {
		panic("pool: Add after Seal")
	}
	if k, ok := keyOf(b); ok {
		m.addKey(&k)
	}
}

func (m *Marks) addKey(k *refKey) {
	if m.sealed {
		panic("pool: Add after Seal")
	}
	// Every chunk but the last is full; the last grows as a slice does, up
	// to a chunk, so that a set of a few blobs stays small.
	if len(m.chunks) == 0 || len(m.chunks[len(m.chunks)-1]) == marksChunk {
		m.chunks = append(m.chunks, nil)
	}
	last := &m.chunks[len(m.chunks)-1]
	*last = append(*last, *k)
	m.n++
}

func (m *Marks) at(i int) *refKey { return &m.chunks[i/marksChunk][i%marksChunk] }

// byKey sorts the keys in place, across chunks.
type byKey Marks

func (o *byKey) Len() int { return o.n }
func (o *byKey) Less(i, j int) bool {
	m := (*Marks)(o)
	return bytes.Compare(m.at(i)[:], m.at(j)[:]) < 0
}
func (o *byKey) Swap(i, j int) {
	m := (*Marks)(o)
	a, b := m.at(i), m.at(j)
	*a, *b = *b, *a
}

// Seal sorts the set (a listing in name order is already sorted, and the
// check costs one pass) and readies the marks.
func (m *Marks) Seal() {
	if m.sealed {
		return
	}
	m.sealed = true
	if len(m.chunks) == 1 {
		// One chunk (up to 32,768 blobs): sorted as a slice, without
		// sort.Interface's calls.
		cmp := func(a, b refKey) int { return bytes.Compare(a[:], b[:]) }
		if !slices.IsSortedFunc(m.chunks[0], cmp) {
			slices.SortFunc(m.chunks[0], cmp)
		}
	} else if !sort.IsSorted((*byKey)(m)) {
		sort.Sort((*byKey)(m))
	}
	m.bits = make([]uint64, (m.n+63)/64)
	for i := range m.n {
		if i == 0 || *m.at(i - 1) != *m.at(i) {
			m.distinct++
		}
	}
}

// find is the first index holding k.
func (m *Marks) find(k refKey) (int, bool) {
	i := sort.Search(m.n, func(i int) bool { return bytes.Compare(m.at(i)[:], k[:]) >= 0 })
	return i, i < m.n && *m.at(i) == k
}

// Mark marks b and says whether it is in the set.
func (m *Marks) Mark(b Blob) bool {
	if !m.sealed {
		panic("pool: Mark before Seal")
	}
	k, ok := keyOf(b)
	if !ok {
		return false
	}
	i, found := m.find(k)
	if found {
		m.bits[i/64] |= 1 << (i % 64)
	}
	return found
}

// Marked says whether b is in the sealed set, and whether it is marked.
func (m *Marks) Marked(b Blob) (in, marked bool) {
	k, ok := keyOf(b)
	if !ok || !m.sealed {
		return false, false
	}
	i, found := m.find(k)
	return found, found && m.bits[i/64]&(1<<(i%64)) != 0
}

// All yields each blob of the sealed set once, in name order, with
// whether it was marked.
func (m *Marks) All() iter.Seq2[Blob, bool] {
	return func(yield func(Blob, bool) bool) {
		if !m.sealed {
			panic("pool: All before Seal")
		}
		for i := 0; i < m.n; i++ {
			k := m.at(i)
			if i > 0 && *m.at(i - 1) == *k {
				continue // the same blob added twice: the first holds the mark
			}
			if !yield(k.blob(), m.bits[i/64]&(1<<(i%64)) != 0) {
				return
			}
		}
	}
}

// Blobs yields each blob of the sealed set once, in name order.
func (m *Marks) Blobs() iter.Seq[Blob] {
	return func(yield func(Blob) bool) {
		for b := range m.All() {
			if !yield(b) {
				return
			}
		}
	}
}

// Count is how many distinct blobs the sealed set holds.
func (m *Marks) Count() int { return m.distinct }

// CountMarked is how many distinct blobs of the sealed set are marked.
func (m *Marks) CountMarked() int {
	n := 0
	for i := range m.n {
		if (i == 0 || *m.at(i - 1) != *m.at(i)) && m.bits[i/64]&(1<<(i%64)) != 0 {
			n++
		}
	}
	return n
}
