package main

import (
	"archive/tar"
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// onepassCmd archives a directory the one-process way, for scale next to
// mbk: archive/tar straight into klauspost/compress's stream encoders (zstd
// at its fastest level, or pgzip at level 1) and into a file, fsynced at the
// end, with no hash and no process boundary. That is the design of
// docker-volume-backup, the peer issue #4 quotes; this is a stand-in written
// here, not the peer itself (which the module proxy does not serve). Like
// mbk, it reads a local volume's directory on the host.
func onepassCmd(args []string) error {
	fl := flag.NewFlagSet("onepass", flag.ExitOnError)
	dir := fl.String("dir", "", "directory to archive")
	out := fl.String("out", "", "archive to write (must not exist)")
	comp := fl.String("compression", "zstd", "zstd or gzip")
	fl.Parse(args)
	if *dir == "" || *out == "" {
		return errors.New("usage: onepass -dir DIR -out FILE [-compression zstd|gzip]")
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	var zw io.WriteCloser
	switch *comp {
	case "zstd":
		zw, err = zstd.NewWriter(bw, zstd.WithEncoderLevel(zstd.SpeedFastest))
	case "gzip":
		zw, err = pgzip.NewWriterLevel(bw, pgzip.BestSpeed)
	default:
		err = fmt.Errorf("compression %q: zstd or gzip", *comp)
	}
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	buf := make([]byte, 256<<10)
	err = filepath.WalkDir(*dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(*dir, path)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		r, err := os.Open(path)
		if err != nil {
			return err
		}
		defer r.Close()
		_, err = io.CopyBuffer(tw, io.LimitReader(r, h.Size), buf)
		return err
	})
	for _, c := range []io.Closer{tw, zw} {
		if err == nil {
			err = c.Close()
		}
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		os.Remove(*out)
	}
	return err
}
