// Command benchtool is the measuring side of `make bench` (scripts/bench.sh):
//
//	benchtool measure -o RESULT.json -label L -round N [-cgroup NAME] -- CMD ARGS...
//	benchtool annotate RESULT.json [-in N] [-out N] [-manifest FILE] [-mbklog FILE]
//	benchtool files -dir DIR -files N -bytes N [-seed S]
//	benchtool onepass -dir DIR -out FILE [-compression zstd|gzip]
//	benchtool report -dir RESULTS -md BENCHMARKS.md -scale S -rounds N -command C
//	benchtool quiet [-max 0.25] [-seconds 3] [-timeout 2m]
//
// measure runs one command and records its wall time, the CPU of its process
// tree, the CPU of the benchmark's containers and of the Docker daemons, and
// the peak resident memory of the tree, sampled from /proc. files writes the
// deterministic moodledata dataset. onepass archives a directory the
// one-process way, for scale next to mbk. report turns the results into medians,
// ratios and a dated section of BENCHMARKS.md. quiet waits for other work on
// the machine to calm down before a round.
//
// It is a tool, not part of mbk: it lives next to the script that uses it.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "measure":
		err = measureCmd(os.Args[2:])
	case "annotate":
		err = annotateCmd(os.Args[2:])
	case "files":
		err = filesCmd(os.Args[2:])
	case "onepass":
		err = onepassCmd(os.Args[2:])
	case "report":
		err = reportCmd(os.Args[2:])
	case "levels":
		err = levelsCmd(os.Args[2:])
	case "quiet":
		err = quietCmd(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchtool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchtool measure|annotate|files|onepass|report|quiet ... (see scripts/bench/benchtool/main.go)")
	os.Exit(2)
}
