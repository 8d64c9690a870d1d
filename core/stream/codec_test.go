package stream

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCodecTable checks the table's own consistency: the default is a codec,
// every leveled codec's default lies in its range, Lookup and Ext agree with
// it, and a codec without levels has all three at 0.
func TestCodecTable(t *testing.T) {
	if got := Names(); !slices.Equal(got, []string{"gzip", "zstd", "none"}) {
		t.Errorf("Names() = %q", got)
	}
	if Names()[0] != DefaultCompression {
		t.Errorf("the default %q is not listed first", DefaultCompression)
	}
	for _, c := range Codecs() {
		got, ok := Lookup(c.Name)
		if !ok || got.Name != c.Name || got.MinLevel != c.MinLevel || got.MaxLevel != c.MaxLevel || got.DefaultLevel != c.DefaultLevel || got.DumpLevel != c.DumpLevel {
			t.Errorf("Lookup(%q) = %+v, %v", c.Name, got, ok)
		}
		if Ext(c.Name, false) != c.Ext || Ext(c.Name, true) != c.Ext+".age" {
			t.Errorf("Ext(%q) = %q, want %q", c.Name, Ext(c.Name, false), c.Ext)
		}
		if c.newReader == nil {
			t.Errorf("%s has no reader", c.Name)
		}
		if !c.TakesLevel() {
			if c.MinLevel != 0 || c.DefaultLevel != 0 || c.DumpLevel != 0 || c.newWriter != nil {
				t.Errorf("%s takes no level but has %+v", c.Name, c)
			}
			continue
		}
		if c.MinLevel < 1 || c.MinLevel > c.DefaultLevel || c.DefaultLevel > c.MaxLevel {
			t.Errorf("%s: levels %d..%d, default %d", c.Name, c.MinLevel, c.MaxLevel, c.DefaultLevel)
		}
		if c.DumpLevel < c.MinLevel || c.DumpLevel > c.MaxLevel {
			t.Errorf("%s: levels %d..%d, dump default %d", c.Name, c.MinLevel, c.MaxLevel, c.DumpLevel)
		}
		if DefaultLevel(c.Name, DumpFormat) != c.DumpLevel || DefaultLevel(c.Name, "tar") != c.DefaultLevel {
			t.Errorf("DefaultLevel(%s): %d for a dump, %d for a tar; the table says %d and %d", c.Name,
				DefaultLevel(c.Name, DumpFormat), DefaultLevel(c.Name, "tar"), c.DumpLevel, c.DefaultLevel)
		}
	}
	if DefaultLevel("bzip2", DumpFormat) != 0 {
		t.Error("DefaultLevel(bzip2) is not 0")
	}
	if _, ok := Lookup("bzip2"); ok {
		t.Error("Lookup(bzip2) found something")
	}
}

// TestTableIsTheEncodersRange: the table's MaxLevel is the encoder's own
// last level, not a guess: the encoder refuses MaxLevel+1. (MinLevel-1 is 0,
// which NewSink reads as "the default" and CheckLevel refuses.)
func TestTableIsTheEncodersRange(t *testing.T) {
	for _, c := range Codecs() {
		if !c.TakesLevel() {
			continue
		}
		w, err := c.newWriter(io.Discard, c.MaxLevel+1)
		if err == nil {
			w.Close()
			t.Errorf("%s's encoder takes level %d: the table's MaxLevel %d is too low", c.Name, c.MaxLevel+1, c.MaxLevel)
		}
	}
}

// TestEveryLevelRoundTrips writes and reads back through NewSink and
// NewReader at every level CheckLevel accepts, and NewSink refuses, before
// creating the file, every level just outside the range, and any level for
// "none".
func TestEveryLevelRoundTrips(t *testing.T) {
	raw := moodleLike(1 << 20)
	dir := t.TempDir()
	for _, c := range Codecs() {
		levels := []int{0} // the default
		for l := c.MinLevel; l <= c.MaxLevel && c.TakesLevel(); l++ {
			levels = append(levels, l)
		}
		for _, l := range levels {
			if l != 0 {
				if err := CheckLevel(c.Name, l); err != nil {
					t.Fatalf("CheckLevel(%s, %d) = %v", c.Name, l, err)
				}
			}
			path := filepath.Join(dir, fmt.Sprintf("%s-%d", c.Name, l))
			s, err := NewSink(path, c.Name, l, nil)
			if err != nil {
				t.Fatalf("NewSink(%s, %d): %v", c.Name, l, err)
			}
			if _, err := s.Write(raw); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Close(); err != nil {
				t.Fatalf("%s level %d: %v", c.Name, l, err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			r, err := NewReader(f, c.Name, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			f.Close()
			if err != nil || !bytes.Equal(got, raw) {
				t.Errorf("%s level %d: round trip differs (%v)", c.Name, l, err)
			}
		}
		outside := []int{-1, 1}
		if c.TakesLevel() {
			outside = []int{c.MinLevel - 1, c.MaxLevel + 1, -1}
		}
		for _, l := range outside {
			if err := CheckLevel(c.Name, l); err == nil {
				t.Errorf("CheckLevel(%s, %d) accepted", c.Name, l)
			}
			if l == 0 {
				continue // NewSink's "default"
			}
			path := filepath.Join(dir, "outside")
			if _, err := NewSink(path, c.Name, l, nil); err == nil {
				t.Fatalf("NewSink(%s, %d) accepted", c.Name, l)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("NewSink(%s, %d) left a file behind", c.Name, l)
			}
		}
	}
}

// TestCheckLevelMessages: the message says what the valid range is, in the
// words validate shows an admin.
func TestCheckLevelMessages(t *testing.T) {
	for _, tt := range []struct {
		name  string
		level int
		want  string
	}{
		{"zstd", 7, "zstd takes compression_level 1 (fastest) to 4 (smallest), not 7"},
		{"zstd", 0, "zstd takes compression_level 1 (fastest) to 4 (smallest), not 0"},
		{"gzip", 10, "gzip takes compression_level 1 (fastest) to 9 (smallest), not 10"},
		{"none", 1, `compression "none" takes no compression_level: remove it, or compress with gzip or zstd`},
		{"bzip2", 1, `unknown compression "bzip2": one of gzip, zstd, none`},
	} {
		err := CheckLevel(tt.name, tt.level)
		if err == nil || err.Error() != tt.want {
			t.Errorf("CheckLevel(%s, %d) = %v, want %q", tt.name, tt.level, err, tt.want)
		}
	}
	if err := CheckLevel("zstd", 4); err != nil {
		t.Errorf("CheckLevel(zstd, 4) = %v", err)
	}
	if got := (Codec{Name: "none"}).Levels(); !strings.Contains(got, "none") {
		t.Errorf("Levels() of none = %q", got)
	}
}

// TestREADMEStatesTheTable: the README names the codecs and their level
// ranges and default levels as the table has them.
func TestREADMEStatesTheTable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	words := strings.Join(strings.Fields(string(b)), " ")
	names := strings.Join(Names(), " | ")
	names = strings.Replace(names, DefaultCompression, DefaultCompression+" (default)", 1)
	wants := []string{names, "`compression` (" + strings.Join(Names(), ", ") + ")"}
	for _, c := range Codecs() {
		if c.TakesLevel() {
			wants = append(wants, fmt.Sprintf("%d-%d for %s", c.MinLevel, c.MaxLevel, c.Name))
			if c.DumpLevel == c.DefaultLevel {
				wants = append(wants, fmt.Sprintf("%s %d for dumps and archives", c.Name, c.DefaultLevel))
			} else {
				wants = append(wants, fmt.Sprintf("%s %d for dumps, %d for archives", c.Name, c.DumpLevel, c.DefaultLevel))
			}
		}
	}
	for _, w := range wants {
		if !strings.Contains(words, w) {
			t.Errorf("README.md does not say %q", w)
		}
	}
}
