package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

// quietCmd waits until the machine is nearly idle (other tenants, a build,
// a test run), so that a round does not measure someone else's work. It
// gives up after a while and says so: the results then carry the noise, and
// the report's "others" column shows how much.
func quietCmd(args []string) error {
	fs := flag.NewFlagSet("quiet", flag.ExitOnError)
	limit := fs.Float64("max", 0.25, "busy fraction of all CPUs that counts as quiet")
	need := fs.Int("seconds", 3, "consecutive quiet seconds needed")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	fs.Parse(args)
	deadline := time.Now().Add(*timeout)
	quiet := 0
	b0, t0 := machineBusy(), machineTotal()
	bStart, tStart := b0, t0
	var frac float64
	for quiet < *need {
		if time.Now().After(deadline) {
			avg := 0.0
			if t0 > tStart {
				avg = (b0 - bStart) / (t0 - tStart)
			}
			fmt.Fprintf(os.Stderr, "[bench] warning: the machine stayed busy (%.0f%% of its CPUs on average) for %s; measuring anyway\n", 100*avg, *timeout)
			return nil
		}
		time.Sleep(time.Second)
		b1, t1 := machineBusy(), machineTotal()
		if t1 > t0 {
			frac = (b1 - b0) / (t1 - t0)
		}
		b0, t0 = b1, t1
		if frac <= *limit {
			quiet++
		} else {
			quiet = 0
		}
	}
	return nil
}
