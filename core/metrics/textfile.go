package metrics

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// TextfileMode lets node_exporter, which seldom runs as mbk's user, read
// the file: it holds figures, never a secret.
const TextfileMode os.FileMode = 0o644

// WriteTextfile writes what g gathers to path in the text format for
// node_exporter's textfile collector, atomically: a hidden temporary file
// beside it (which the collector, reading *.prom only, never reads),
// synced, then renamed over path. A writer killed midway leaves the old
// file whole; its temporary file is removed by the next write.
func WriteTextfile(path string, g prometheus.Gatherer) error {
	mfs, err := g.Gather()
	if err != nil {
		return fmt.Errorf("gather the metrics: %w", err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			return fmt.Errorf("encode the metrics: %w", err)
		}
	}
	return writeAtomic(path, b.Bytes())
}

// midway, when set (by a test only), runs once half the data is written
// to the temporary file.
var midway func()

func writeAtomic(path string, data []byte) error {
	dir, base := filepath.Dir(path), filepath.Base(path)
	prefix := "." + base + ".tmp-"
	removeDead(dir, prefix)
	tmp := filepath.Join(dir, prefix+strconv.Itoa(os.Getpid()))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, TextfileMode)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp) // gone after the rename; left only on failure
	half := len(data) / 2
	_, err = f.Write(data[:half])
	if err == nil && midway != nil {
		midway()
	}
	if err == nil {
		_, err = f.Write(data[half:])
	}
	if err == nil {
		err = f.Chmod(TextfileMode) // whatever the umask made of it
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// removeDead removes the temporary files of writers that were killed: each
// is named for its writer's process, and that process is gone.
func removeDead(dir, prefix string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(strings.TrimPrefix(e.Name(), prefix))
		if !strings.HasPrefix(e.Name(), prefix) || err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
