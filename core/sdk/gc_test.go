package sdk

import (
	"os"
	"runtime/debug"
	"testing"
)

// mbk and its plugins collect at LeanGCPercent unless GOGC is set.
func TestLeanGC(t *testing.T) {
	was := debug.SetGCPercent(100)
	defer debug.SetGCPercent(was)

	t.Setenv("GOGC", "")
	LeanGC()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set (even empty), LeanGC changed the target to %d", got)
	}

	// Unset for the rest of this test (t.Setenv restores it after).
	unsetenv(t, "GOGC")
	LeanGC()
	if got := debug.SetGCPercent(100); got != LeanGCPercent {
		t.Errorf("without GOGC, the target is %d, want %d", got, LeanGCPercent)
	}
}

// unsetenv removes key from the environment until the test ends.
func unsetenv(t *testing.T, key string) {
	t.Setenv(key, "") // restores the value the test started with
	if err := os.Unsetenv(key); err != nil {
		t.Fatal(err)
	}
}
