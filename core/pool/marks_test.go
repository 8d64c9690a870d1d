package pool

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func testBlob(i int) Blob {
	h := sha1.Sum([]byte(fmt.Sprint(i)))
	return Blob{SHA1: hex.EncodeToString(h[:]), Size: int64(i % 7)}
}

// Marks holds each blob once, in name order, across chunks, whatever
// order they came in and however often; marks stick to the blob marked;
// names that are no blob's are left out.
func TestMarks(t *testing.T) {
	const n = marksChunk*2 + 100 // three chunks
	var m Marks
	for i := n - 1; i >= 0; i-- {
		m.Add(testBlob(i))
		if i%1000 == 0 {
			m.Add(testBlob(i)) // twice
		}
	}
	m.Add(Blob{SHA1: strings.Repeat("z", 40), Size: 1})
	m.Add(Blob{SHA1: "abc", Size: 1})
	m.Seal()
	if m.Count() != n {
		t.Fatalf("Count = %d, want %d", m.Count(), n)
	}
	for i := 0; i < n; i += 3 {
		if !m.Mark(testBlob(i)) {
			t.Fatalf("blob %d not found", i)
		}
	}
	if m.Mark(testBlob(n)) || m.Mark(Blob{SHA1: strings.Repeat("z", 40), Size: 1}) {
		t.Error("Mark found a blob never added")
	}
	want := map[string]bool{}
	for i := range n {
		want[testBlob(i).String()] = i%3 == 0
	}
	var names []string
	marked := 0
	for b, mk := range m.All() {
		names = append(names, b.SHA1+fmt.Sprintf("%016x", b.Size))
		w, ok := want[b.String()]
		if !ok || w != mk {
			t.Fatalf("All gave %s marked %v; want it %v (known %v)", b, mk, w, ok)
		}
		delete(want, b.String())
		if mk {
			marked++
		}
	}
	if len(want) > 0 || !slices.IsSorted(names) {
		t.Errorf("All left out %d blobs, or is out of order", len(want))
	}
	if m.CountMarked() != marked || marked != (n+2)/3 {
		t.Errorf("CountMarked = %d, All marked %d, want %d", m.CountMarked(), marked, (n+2)/3)
	}
	if in, mk := m.Marked(testBlob(3)); !in || !mk {
		t.Errorf("Marked(blob 3) = %v, %v", in, mk)
	}
	if in, mk := m.Marked(testBlob(4)); !in || mk {
		t.Errorf("Marked(blob 4) = %v, %v", in, mk)
	}
}

// A POOL_REFS line is 40 lower-case hex digits, a space and a size; its
// key is the binary hash and the size, as keyOf makes it from the Blob.
func TestParseRef(t *testing.T) {
	const h = "0123456789abcdef0123456789abcdef01234567"
	k, ok := parseRef([]byte(h + " 42"))
	want, _ := keyOf(Blob{SHA1: h, Size: 42})
	if !ok || k != want || k.blob() != (Blob{SHA1: h, Size: 42}) {
		t.Fatalf("parseRef of a good line: %x %v", k, ok)
	}
	for _, bad := range []string{
		"", h, h + " ", h + " -1", h + " x", h + " 4 2", h + "  4",
		"0123456789ABCDEF0123456789abcdef01234567 4", // upper case
		h[:39] + " 4", h + "0 4", "g" + h[1:] + " 4",
	} {
		if _, ok := parseRef([]byte(bad)); ok {
			t.Errorf("parseRef(%q) took it", bad)
		}
	}
	for _, bad := range []Blob{{SHA1: strings.ToUpper(h), Size: 1}, {SHA1: h[:39], Size: 1}, {SHA1: h, Size: -1}, {SHA1: h[:39] + "g"}} {
		if _, ok := keyOf(bad); ok {
			t.Errorf("keyOf took %+v", bad)
		}
	}
}
