package main

import "testing"

func TestDebVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3":            "1.2.3",
		"v1.2.3-4-gabc1234": "1.2.3+4.gabc1234",
		"1.2":               "1.2",
		"443cd6e":           "0.0~git.443cd6e",
		"2ce88d7-dirty":     "0.0~git.2ce88d7.dirty",
		"v0.1.0-rc1-dirty":  "0.1.0+rc1.dirty",
		"abcdef0":           "0.0~git.abcdef0",
	} {
		if got := debVersion(in); got != want {
			t.Errorf("debVersion(%q) = %q, want %q", in, got, want)
		}
	}
}
