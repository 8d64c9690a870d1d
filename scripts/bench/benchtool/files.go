package main

import (
	"bufio"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// filesCmd writes a moodledata tree in Moodle's shape: a content-addressed
// filedir/ab/cd/<sha1> pool with about half of its bytes already compressed
// (random bytes stand for JPEG, MP4, PDF, zip) and half text, plus trashdir,
// lang and muc. Everything (sizes, contents, names, times) follows from the
// seed, so a scale always gives the same bytes.
func filesCmd(args []string) error {
	fs := flag.NewFlagSet("files", flag.ExitOnError)
	dir := fs.String("dir", "", "moodledata root to fill (must be empty)")
	n := fs.Int("files", 0, "number of files in filedir")
	total := fs.Int64("bytes", 0, "total bytes of filedir")
	seed := fs.Uint64("seed", 1, "seed")
	marker := fs.String("marker", "", "written last to .mbk-bench-dataset: says the dataset is complete")
	uid := fs.Int("uid", 33, "owner of every entry")
	gid := fs.Int("gid", 33, "group of every entry")
	add := fs.Bool("add", false, "add N new files to filedir of an existing tree (a night's new uploads) and print their paths, one a line")
	fs.Parse(args)
	if *dir == "" || *n <= 0 || *total <= 0 {
		return errors.New("usage: files -dir DIR -files N -bytes N [-seed S] [-add]")
	}
	if *add {
		g := &gen{root: *dir, seed: *seed, uid: *uid, gid: *gid, words: vocabulary(*seed), list: os.Stdout}
		return g.pool(*n, *total)
	}
	if ents, err := os.ReadDir(*dir); err != nil {
		return err
	} else if len(ents) > 0 {
		return fmt.Errorf("%s is not empty", *dir)
	}
	g := &gen{root: *dir, seed: *seed, uid: *uid, gid: *gid, words: vocabulary(*seed)}
	t0 := time.Now()
	if err := g.pool(*n, *total); err != nil {
		return err
	}
	if err := g.extras(); err != nil {
		return err
	}
	if err := g.write(".mbk-bench-dataset", []byte(*marker+"\n")); err != nil {
		return err
	}
	// Last, as adding entries changed them: directory times too are fixed.
	for d := range g.dirs {
		if err := os.Chtimes(filepath.Join(g.root, d), baseTime, baseTime); err != nil {
			return err
		}
	}
	fmt.Printf("wrote %d files, %d bytes (%d already compressed, %.0f%%) in %s\n",
		g.files, g.bytes, g.random, 100*float64(g.random)/float64(max(g.bytes, 1)), time.Since(t0).Round(time.Millisecond))
	return nil
}

type gen struct {
	root                 string
	seed                 uint64
	uid, gid             int
	words                []string
	files, bytes, random int64
	dirs                 map[string]bool
	list                 io.Writer // -add: where each new file's path goes
}

// baseTime is the mtime of the first file; the others follow it.
var baseTime = time.Date(2023, 9, 1, 8, 0, 0, 0, time.UTC)

// sizes draws n file sizes: most small (log-uniform 300 B - 600 KiB), 3%
// large (1 - 16 MiB), all scaled so that they add up to total.
func sizes(seed uint64, n int, total int64) []int64 {
	r := rand.New(rand.NewPCG(seed, 0x6d626b))
	raw := make([]float64, n)
	var sum float64
	for i := range raw {
		lo, hi := 300.0, 600.0*1024
		if r.IntN(100) < 3 {
			lo, hi = 1<<20, 16<<20
		}
		raw[i] = math.Exp(math.Log(lo) + r.Float64()*(math.Log(hi)-math.Log(lo)))
		sum += raw[i]
	}
	out := make([]int64, n)
	var got int64
	for i, v := range raw {
		out[i] = max(1, int64(v*float64(total)/sum))
		got += out[i]
	}
	out[n-1] = max(1, out[n-1]+total-got) // exact total
	return out
}

func (g *gen) pool(n int, total int64) error {
	var text int64
	for i, size := range sizes(g.seed, n, total) {
		// Greedy balance: whichever kind is behind gets the next file.
		random := g.random <= text
		if err := g.poolFile("filedir", uint64(i), int64(i), size, random); err != nil {
			return err
		}
		if !random {
			text += size
		}
	}
	return nil
}

// poolFile writes file number i (its content follows from i) with the
// modification time of slot at.
func (g *gen) poolFile(area string, i uint64, at, size int64, random bool) error {
	tmp := filepath.Join(g.root, ".gen.tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	h := sha1.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 256<<10)
	if random {
		err = g.randomBytes(bw, i, size)
	} else {
		err = g.text(bw, i, size)
	}
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	dir := filepath.Join(area, sum[:2], sum[2:4])
	if err := g.mkdirs(dir); err != nil {
		return err
	}
	dst := filepath.Join(g.root, dir, sum)
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	if g.list != nil {
		fmt.Fprintln(g.list, filepath.Join(dir, sum))
	}
	g.files++
	g.bytes += size
	if random {
		g.random += size
	}
	return g.own(dst, 0o640, at)
}

func (g *gen) randomBytes(w io.Writer, i uint64, size int64) error {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], g.seed)
	binary.LittleEndian.PutUint64(key[8:], i)
	c := rand.NewChaCha8(key)
	buf := make([]byte, 64<<10)
	for size > 0 {
		b := buf[:min(int64(len(buf)), size)]
		c.Read(b)
		if _, err := w.Write(b); err != nil {
			return err
		}
		size -= int64(len(b))
	}
	return nil
}

// text writes prose-like lines of words drawn with a Zipf law from a fixed
// vocabulary: it compresses about as well as real documents do.
func (g *gen) text(w io.Writer, i uint64, size int64) error {
	r := rand.New(rand.NewPCG(g.seed^0x74657874, i))
	z := rand.NewZipf(r, 1.2, 2, uint64(len(g.words)-1))
	var line []byte
	for size > 0 {
		line = line[:0]
		if r.IntN(8) == 0 {
			line = append(line, "<p>"...)
		}
		for k := 8 + r.IntN(10); k > 0; k-- {
			line = append(line, g.words[z.Uint64()]...)
			line = append(line, ' ')
		}
		line = append(line, ".\n"...)
		b := line[:min(int64(len(line)), size)]
		if _, err := w.Write(b); err != nil {
			return err
		}
		size -= int64(len(b))
	}
	return nil
}

// vocabulary makes 4096 word-like strings from syllables.
func vocabulary(seed uint64) []string {
	syl := strings.Fields("a e i o u ba be bi bo bu ca ce ci co cu da de di do du la le li lo lu ma me mi mo mu na ne ni no nu ño pa pe pi po pu ra re ri ro ru sa se si so su ta te ti to tu tion ment ción dad mente al el en es")
	r := rand.New(rand.NewPCG(seed, 0x766f63))
	out := make([]string, 4096)
	for i := range out {
		var b strings.Builder
		for k := 1 + r.IntN(4); k > 0; k-- {
			b.WriteString(syl[r.IntN(len(syl))])
		}
		out[i] = b.String()
	}
	return out
}

// extras adds the rest of a dataroot: a few files in trashdir, language
// packs and the cache store configuration.
func (g *gen) extras() error {
	for i := range uint64(20) {
		if err := g.poolFile("trashdir", 1<<40+i, int64(i), int64(2000+i*500), i%2 == 0); err != nil {
			return err
		}
	}
	files := map[string]string{
		"lang/es/langconfig.php": "<?php\n$string['thisdirection'] = 'ltr';\n$string['thislanguage'] = 'Español - Internacional';\n",
		"lang/en/langconfig.php": "<?php\n$string['thisdirection'] = 'ltr';\n$string['thislanguage'] = 'English';\n",
		"muc/config.php":         "<?php defined('MOODLE_INTERNAL') || die();\n $configuration = array ('siteidentifier' => 'mbkbench0123456789abcdef');\n",
		".htaccess":              "deny from all\n",
	}
	for name, body := range files {
		if err := g.write(name, []byte(body)); err != nil {
			return err
		}
	}
	return nil
}

func (g *gen) write(name string, body []byte) error {
	if err := g.mkdirs(filepath.Dir(name)); err != nil {
		return err
	}
	p := filepath.Join(g.root, name)
	if err := os.WriteFile(p, body, 0o640); err != nil {
		return err
	}
	return g.own(p, 0o640, 0)
}

func (g *gen) mkdirs(dir string) error {
	if g.dirs == nil {
		g.dirs = map[string]bool{".": true}
	}
	if g.dirs[dir] {
		return nil
	}
	if err := g.mkdirs(filepath.Dir(dir)); err != nil {
		return err
	}
	p := filepath.Join(g.root, dir)
	if err := os.Mkdir(p, 0o750); err != nil && !os.IsExist(err) {
		return err
	}
	g.dirs[dir] = true
	return g.own(p, 0o750, 0)
}

func (g *gen) own(p string, mode os.FileMode, i int64) error {
	if err := os.Chown(p, g.uid, g.gid); err != nil {
		return err
	}
	if err := os.Chmod(p, mode); err != nil {
		return err
	}
	t := baseTime.Add(time.Duration(i) * 37 * time.Second)
	return os.Chtimes(p, t, t)
}
