package engine

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// A stream is handed on up to the manifest's raw size: exactly that size
// passes, a byte more is cut off with an error naming the file, a shorter
// one ends short (the plugin's byte count then tells).
func TestRawCap(t *testing.T) {
	for _, tt := range []struct {
		data    string
		size    int64
		want    string
		wantErr bool
	}{
		{"0123456789", 10, "0123456789", false},
		{"0123456789", 9, "012345678", true},
		{"0123456789", 0, "", true},
		{"012", 10, "012", false},
		{"", 0, "", false},
	} {
		c := &rawCap{r: strings.NewReader(tt.data), size: tt.size, file: "moodle.sql.gz"}
		got, err := io.ReadAll(iotest.OneByteReader(c))
		if string(got) != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%q capped at %d: %q, %v", tt.data, tt.size, got, err)
		}
		if tt.wantErr && (err == nil || !strings.Contains(err.Error(), "moodle.sql.gz decompresses past the")) {
			t.Errorf("error %v does not name the file", err)
		}
	}
}
