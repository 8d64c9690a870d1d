package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// A dump is input, not code. The SQL client that loads it also obeys its
// own commands, found anywhere a statement may start or after a backslash
// outside a string: `\! cmd` and `system cmd` run a shell (on the host when
// the client runs there, as mbk's user), `\.` and `source` read files, `tee`
// writes them, `connect` and `use` go elsewhere. A backup set whose
// checksums were rewritten could carry any of them.
//
// Three guards, each enough for what it covers:
//
//   - The client runs with --binary-mode (every client since MySQL 5.6 and
//     MariaDB 10.0), which turns off every client command but \C and
//     DELIMITER on piped input, and where it has one with --sandbox, which
//     refuses what touches files or runs programs (sqlCmd).
//   - checkDump reads the whole dump before anything of the target is
//     touched and refuses one that holds a client command other than those
//     mariadb-dump and mysqldump write themselves: DELIMITER ;; and
//     DELIMITER ; on a line of their own, and MariaDB's
//     /*M!999999\- enable the sandbox mode */ (\- only restricts the client).
//     No USE either: our dumps are made without --databases, and a USE would
//     send the rest of the dump to another database.
//   - A client that dies anyway fails the restore at once (load).
//
// Why a full pre-pass, spooled to a temporary file, and not a check on the
// fly: a restore with replace drops the existing database before the first
// statement is loaded, and a dump has no end-of-dump marker before its last
// line, so a refusal on the fly could only come after the old database was
// gone and some of the new one loaded. Reading the dump through first keeps
// the promise "a refused dump changes nothing": the target is neither
// created, altered nor dropped. The spool is compressed (zstd, fastest: a
// SQL dump shrinks about fivefold at several hundred MB/s) and unlinked as
// soon as it is made, so a killed plugin leaves nothing behind; it goes to
// $TMPDIR (default /tmp).
//
// The check follows the client's own parser (mysql.cc, add_line and
// read_and_execute): quotes, /* */ comments (but not /*! and /*M!, inside
// which the client obeys backslash commands), `-- ` and # comments, whole
// lines starting with # or -- skipped, the current delimiter. It assumes the
// server's default quoting: a dump that switches NO_BACKSLASH_ESCAPES or
// ANSI_QUOTES on for its session could make a string end elsewhere than
// this check thinks, which is what --binary-mode is there for.

// clientCommands are the mysql and mariadb clients' long command names
// (MySQL 8 and MariaDB 11 included), matched case-insensitively as the first
// word of a statement.
var clientCommands = []string{
	"?", "charset", "clear", "connect", "delimiter", "edit", "ego", "exit", "go", "help",
	"nopager", "notee", "nowarning", "pager", "print", "prompt", "query_attributes", "quit",
	"rehash", "resetconnection", "sandbox", "source", "ssl_session_data_print", "status",
	"system", "tee", "use", "warnings",
}

// errClientCommand marks a refused dump.
var errClientCommand = errors.New("the dump holds a command for the SQL client")

// dumpGuard is the state of the check between lines.
type dumpGuard struct {
	line    int64  // the current line, from 1
	quote   byte   // the open quote: ', " or `; 0 outside a string
	comment bool   // inside /* */
	start   bool   // no statement begun: the next word may be a command
	delim   string // ";" or ";;"
}

func newDumpGuard() *dumpGuard { return &dumpGuard{start: true, delim: ";"} }

// refuse is the error for a client command at the current line.
func (g *dumpGuard) refuse(what string) error {
	return fmt.Errorf("line %d: %w: %s; a dump is loaded as data, and this one was refused before anything was restored", g.line, errClientCommand, what)
}

// checkLine checks one line, without its newline.
func (g *dumpGuard) checkLine(line []byte) error {
	g.line++
	// read_and_execute skips a line that starts with # or -- outside a
	// string, whatever follows, even inside a /* */ comment.
	if g.quote == 0 && (bytes.HasPrefix(line, []byte("#")) || bytes.HasPrefix(line, []byte("--"))) {
		return nil
	}
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case g.comment:
			j := bytes.Index(line[i:], []byte("*/"))
			if j < 0 {
				return nil
			}
			g.comment = false
			i += j + 2
			continue
		case g.quote != 0:
			j := bytes.IndexAny(line[i:], `\'"`+"`")
			if j < 0 {
				return nil
			}
			i += j
			c = line[i]
			if c == '\\' && g.quote != '`' {
				i += 2 // an escaped character, perhaps the newline
				continue
			}
			if c == g.quote {
				g.quote = 0
			}
			i++
			continue
		}
		if g.start {
			if isSpace(c) {
				i++
				continue
			}
			if c == '/' && i+1 < len(line) && line[i+1] == '*' && !isExecComment(line[i:]) {
				g.comment = true
				i += 2
				continue
			}
			if c == '#' || isDashComment(line[i:]) {
				return nil
			}
			n := 0
			for n < len(line)-i && isWordByte(line[i+n]) {
				n++
			}
			word := strings.ToLower(string(line[i : i+n]))
			if word == "delimiter" {
				arg := string(bytes.TrimSpace(line[i+n:]))
				if n < len(line)-i && !isSpace(line[i+n]) || arg != ";;" && arg != ";" {
					return g.refuse(fmt.Sprintf("%q (mariadb-dump and mysqldump write only DELIMITER ;; and DELIMITER ;)", clip(line)))
				}
				g.delim = arg
				return nil
			}
			for _, cmd := range clientCommands {
				if word == cmd {
					return g.refuse(fmt.Sprintf("%q", clip(line[i:])))
				}
			}
			g.start = false
		}
		switch {
		case c == '\\':
			if i+1 < len(line) && line[i+1] != 'N' && line[i+1] != '-' {
				return g.refuse(fmt.Sprintf("%q", clip(line[i:])))
			}
			i += 2
			continue
		case c == '\'' || c == '"' || c == '`':
			g.quote = c
		case c == '/' && i+1 < len(line) && line[i+1] == '*' && !isExecComment(line[i:]):
			g.comment = true
			i += 2
			continue
		case c == '#' || isDashComment(line[i:]):
			return nil
		case bytes.HasPrefix(line[i:], []byte(g.delim)):
			g.start = true
			i += len(g.delim)
			continue
		}
		i++
	}
	return nil
}

// isExecComment: /*! or /*M!, whose text the client treats as code.
func isExecComment(b []byte) bool {
	return bytes.HasPrefix(b, []byte("/*!")) || bytes.HasPrefix(b, []byte("/*M!"))
}

// isDashComment: "-- " or "--" and another blank, as the client reads it.
func isDashComment(b []byte) bool {
	return len(b) >= 3 && b[0] == '-' && b[1] == '-' && isSpace(b[2])
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '?'
}

// clip shortens a line for a message: a refused line may be table data.
func clip(b []byte) string {
	b = bytes.TrimRight(b, "\r\n")
	if len(b) > 80 {
		return strings.ToValidUTF8(string(b[:80]), "") + "..."
	}
	return strings.ToValidUTF8(string(b), "?")
}

// check reads r through to its end, line by line, and stops at the first
// line holding a client command.
func (g *dumpGuard) check(r io.Reader, each func(line []byte) error) error {
	br := bufio.NewReaderSize(r, 256<<10)
	var long []byte
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if len(line) > 0 {
			if each != nil {
				if werr := each(line); werr != nil {
					return werr
				}
			}
			if cerr := g.checkLine(bytes.TrimSuffix(line, []byte("\n"))); cerr != nil {
				return cerr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// spool is the checked dump, kept in an unlinked temporary file.
type spool struct {
	f *os.File
	*zstd.Decoder
}

func (s *spool) Close() error {
	s.Decoder.Close()
	return s.f.Close()
}

// Rewind makes the spool read the dump again from its first byte.
func (s *spool) Rewind() error {
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return s.Decoder.Reset(s.f)
}

// checkDump reads the whole dump r, refusing it at the first client command
// (errClientCommand, with the line), and returns it to be read again.
func checkDump(ctx context.Context, r io.Reader) (*spool, error) {
	f, err := os.CreateTemp("", "mbk-restore-*.sql.zst")
	if err != nil {
		return nil, fmt.Errorf("a temporary file to check the dump in before loading it: %w", err)
	}
	os.Remove(f.Name()) // open, it stays until closed
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	zw, err := zstd.NewWriter(f, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	g := newDumpGuard()
	err = g.check(r, func(line []byte) error {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		if _, err := zw.Write(line); err != nil {
			return fmt.Errorf("keep the dump in a temporary file (in $TMPDIR, default /tmp) while it is checked: %w", err)
		}
		return nil
	})
	if cerr := zw.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("keep the dump in a temporary file (in $TMPDIR, default /tmp) while it is checked: %w", cerr)
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	ok = true
	return &spool{f: f, Decoder: zr}, nil
}
