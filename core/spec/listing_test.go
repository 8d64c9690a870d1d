package spec

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Lines read back as written: directories and files, a hash written out
// and one that is the name's last element, times with and without
// nanoseconds, the largest ids and modes.
func TestListingRoundTrip(t *testing.T) {
	sha := "2bed8615409c5bc3a3490191530839c0fa15c8c5"
	in := []ListEntry{
		{Dir: true, Name: "filedir/", Mode: 0o2750, UID: 33, GID: 33, ModTime: time.Unix(1764843000, 123456789)},
		{Name: "filedir/2b/ed/" + sha, Mode: 0o640, UID: 33, GID: 33, ModTime: time.Unix(1764843000, 0), Size: 37123, SHA1: sha},
		{Name: "filedir/2b/ed/" + strings.Repeat("0", 40), Mode: 0o7777, UID: 1<<31 - 1, GID: 0, ModTime: time.Unix(0, 1), Size: 0, SHA1: sha},
		{Name: "trashdir/a name with spaces", Mode: 0, ModTime: time.Unix(1, 100), Size: 1 << 40, SHA1: sha},
	}
	var data []byte
	for i := range in {
		if !Listable(&in[i]) {
			t.Fatalf("entry %d not listable: %+v", i, in[i])
		}
		data = AppendListEntry(data, &in[i])
	}
	if !strings.Contains(string(data), " = filedir/2b/ed/"+sha+"\n") {
		t.Errorf("a hash that is the name was written out:\n%s", data)
	}
	var out []ListEntry
	if err := ParseListing(data, func(e *ListEntry) error { out = append(out, *e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("read %d entries, want %d", len(out), len(in))
	}
	for i := range in {
		if !out[i].ModTime.Equal(in[i].ModTime) {
			t.Errorf("entry %d: time %v, want %v", i, out[i].ModTime, in[i].ModTime)
		}
		out[i].ModTime, in[i].ModTime = time.Time{}, time.Time{}
		if out[i] != in[i] {
			t.Errorf("entry %d read back as %+v, want %+v", i, out[i], in[i])
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := ParseListing(data, func(*ListEntry) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("fn's error: %v after %d entries", err, n)
	}
}

// What cannot be a line is not listable, and a line not in its one
// written form is refused, by its number.
func TestListingRefused(t *testing.T) {
	sha := "2bed8615409c5bc3a3490191530839c0fa15c8c5"
	for _, e := range []ListEntry{
		{Dir: true, Name: ""},
		{Dir: true, Name: "new\nline"},
		{Dir: true, Name: "caf\xc3\xa9"},
		{Dir: true, Name: "d", Mode: 0o10000},
		{Dir: true, Name: "d", UID: -1},
		{Dir: true, Name: "d", ModTime: time.Unix(-1, 0)},
		{Name: "f", SHA1: "2BED8615409C5BC3A3490191530839C0FA15C8C5"},
		{Name: "f", SHA1: sha[:39]},
		{Name: "f", SHA1: sha, Size: -1},
	} {
		if Listable(&e) {
			t.Errorf("listable: %+v", e)
		}
	}
	good := "d 750 33 33 1764843000 filedir/\n"
	for _, bad := range []string{
		"d 750 33 33 1764843000 filedir/",              // no end of line
		"x 750 33 33 1764843000 filedir/\n",            // kind
		"d 750 33 33 filedir/\n",                       // a field missing
		"d 0750 33 33 1764843000 filedir/\n",           // leading zero
		"d 750 +33 33 1764843000 filedir/\n",           // sign
		"d 750 33 33 1764843000.5 filedir/\n",          // short nanoseconds
		"d 750 33 33 1764843000.000000000 filedir/\n",  // zero nanoseconds written out
		"d 789 33 33 1764843000 filedir/\n",            // not octal
		"d 750 33 33 1764843000 \n",                    // no name
		"f 640 33 33 1 12 " + sha + " x/" + sha + "\n", // "=" written out
		"f 640 33 33 1 12 = x/notahash\n",              // "=" where the name is no hash
		"f 640 33 33 1 -12 " + sha + " x\n",            // size
		"d 750 4294967296 33 1764843000 filedir/\n",    // uid
	} {
		err := ParseListing([]byte(good+bad), func(*ListEntry) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzParseListing(f *testing.F) {
	f.Add([]byte("d 750 33 33 1764843000.000000001 filedir/\nf 640 33 33 1 12 = filedir/2b/ed/2bed8615409c5bc3a3490191530839c0fa15c8c5\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var again []byte
		if ParseListing(data, func(e *ListEntry) error { again = AppendListEntry(again, e); return nil }) == nil && string(again) != string(data) {
			t.Fatalf("%q read back as %q", data, again)
		}
	})
}
