package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// A restore is bound by the server's one thread per connection: loading a
// 100 MiB Moodle dump kept one core of the database container busy for 8.5
// CPU-s, and nothing else. load spreads the dump's INSERT statements over
// several connections (one SQL client each), which on the bench site took
// the load from 9.8 s to 6.6 s with two.
//
// It reads the dump as mariadb-dump and mysqldump write it, line by line:
//
//   - The leading comments and /*!... SET ... */ lines are the session's
//     settings (character set, time zone, UNIQUE_CHECKS=0, sql_mode): every
//     connection gets them first.
//   - A line starting with INSERT INTO `, INSERT IGNORE INTO ` or REPLACE
//     INTO ` outside a DELIMITER block starts a data statement, which ends
//     with the first line ending in ";": values never hold a raw newline
//     (the dump escapes it), so every line of an INSERT is whole rows.
//   - LOCK TABLES, UNLOCK TABLES and ALTER TABLE ... DISABLE/ENABLE KEYS
//     lines are left out: a table lock held by one connection would stall
//     the others, and InnoDB ignores the keys switch.
//   - Everything else (DDL, triggers, views, routines, events, comments)
//     goes to the first connection, in order.
//
// Order is kept where it matters. A data statement goes to another
// connection only after the first one has run the statements before it
// (the table exists); a statement that is not data waits until every
// connection has run the data sent before it (a trigger must not fire on
// restored rows; a view must find its tables). The first connection needs
// no waiting: it runs its share in order. The waits use a marker, SELECT
// 'mbk-sync-N', whose output tells that the connection got there. A table
// with a single INSERT costs no wait at all.
type loader struct {
	ctx     context.Context
	fail    context.CancelCauseFunc
	workers []*loadWorker
	// dataOn[i]: worker i got data since the last barrier.
	dataOn []bool
	// ddlMark is the first worker's marker after the latest statements that
	// were not data, and waitedDDL whether it was awaited in this run of data.
	ddlMark   uint64
	waitedDDL bool
	lastPick  int // the worker the latest data statement went to
	runLen    int // data statements since the last statement that was not
	pool      sync.Pool
	// pending are tables created without their secondary keys (deferKeys),
	// whose ALTER TABLE waits for their rows; dataTable is the table the
	// latest data statement filled.
	pending   []pendingKeys
	dataTable string
	// spread says which tables' rows may go to several workers: those
	// created here with no unique secondary key left. Concurrent INSERTs
	// into a unique index take gap locks for its duplicate check and can
	// deadlock (seen on the bench site's mdl_files before keys were
	// deferred); a table this dump did not create stays on one worker too.
	spread     map[string]bool
	dataSpread bool
	// lineNo is the dump's line being read, createLine the one its CREATE
	// TABLE being read began on, and src where the lines of each buffer
	// not yet sent came from: a client's "at line N" is a line of its own
	// input, which the error turns into the dump's.
	lineNo, createLine int64
	src                map[*bytes.Buffer]*srcMap
}

// srcMap says where a buffer's lines came from: refs[i] tells that its line
// refs[i].at (from 0) is the dump's line refs[i].dump, and the lines after it
// the lines after that; dump 0 is a statement of mbk's own.
type srcMap struct {
	lines int
	refs  []lineRef
}

type lineRef struct {
	at   int
	dump int64
}

// piece is what a worker's client is sent next.
type piece struct {
	b    *bytes.Buffer
	refs []lineRef // nil: mbk's own statement
}

// seg: from the client's input line client on, the dump's line dump.
type seg struct{ client, dump int64 }

type pendingKeys struct {
	table, alter string
	filled       bool // rows were sent
}

// loadWorker is one connection: a SQL client reading from a pipe.
type loadWorker struct {
	id    int
	queue chan piece
	// queued counts the bytes handed to this worker and not yet written
	// to its client: the least busy worker gets the next statement.
	queued atomic.Int64
	next   uint64        // the next marker's number
	seen   atomic.Uint64 // the highest marker the client has printed, +1
	ping   chan struct{} // a marker was seen
	done   chan struct{} // the client exited
	code   int
	err    error
	stderr lines
	// written counts the lines sent to the client, segs maps them to the
	// dump's (both the writer's own, read once the client is gone).
	written int64
	segs    []seg
	// failed: the client said ERROR, which it says before it exits.
	failed atomic.Bool
}

// dumpLine is the dump's line that the client's input line n came from;
// 0 for a statement of mbk's own, -1 when unknown.
func (w *loadWorker) dumpLine(n int64) int64 {
	i := sort.Search(len(w.segs), func(i int) bool { return w.segs[i].client > n }) - 1
	if i < 0 {
		return -1
	}
	if w.segs[i].dump == 0 {
		return 0
	}
	return w.segs[i].dump + n - w.segs[i].client
}

var clientLine = regexp.MustCompile(` at line ([0-9]+)`)

// failure is the client's own words and, when they name a line of its
// input, the dump's line it came from.
func (w *loadWorker) failure(client string, code int) string {
	msg := said(client, w.stderr.failure(code))
	for _, l := range w.stderr.last {
		m := clientLine.FindStringSubmatch(l)
		if !strings.HasPrefix(l, "ERROR") || m == nil {
			continue
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		switch d := w.dumpLine(n); {
		case d > 0:
			return fmt.Sprintf("%s [connection %d, line %d of the dump]", msg, w.id+1, d)
		case d == 0:
			return fmt.Sprintf("%s [connection %d, in a statement mbk added, not a line of the dump]", msg, w.id+1)
		}
		break
	}
	return msg
}

// syncPrefix starts a marker's output line.
const syncPrefix = "mbk-sync-"

// load streams the dump r into database target over jobs connections.
func (p *plugin) load(ctx context.Context, ss *session, target string, jobs int, r io.Reader) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	l := &loader{ctx: ctx, fail: cancel, dataOn: make([]bool, jobs), src: map[*bytes.Buffer]*srcMap{}}
	l.pool.New = func() any { return new(bytes.Buffer) }
	client := path.Base(ss.sql)
	var wg sync.WaitGroup
	for i := range jobs {
		w := &loadWorker{id: i, queue: make(chan piece, 1), ping: make(chan struct{}, 1), done: make(chan struct{})}
		l.workers = append(l.workers, w)
		pr, pw := io.Pipe()
		wg.Add(2)
		go func() {
			defer wg.Done()
			defer close(w.done)
			w.code, w.err = ss.run.run(ctx, command{
				// --unbuffered: a marker's output must come out at once,
				// not when the client's stdout buffer fills.
				args:   ss.sqlCmd("--batch", "--skip-column-names", "--unbuffered", "--database="+target),
				env:    ss.env,
				stdin:  pr,
				bulkIn: true,
				via: func(way, why string) {
					if w.id == 0 && why != "" {
						p.log.Info("restore input through the Engine's attach stream", "database", target, "why not a FIFO", why)
					}
				},
				stdout: &markWriter{w: w},
				stderr: func(line string) {
					p.log.Warn(client+" said", "database", target, "connection", w.id+1, "line", w.stderr.add(line))
					// Without --force the client exits after its first
					// ERROR: the load fails now. Its input is closed at
					// once, for a runner that waits for the input to end
					// before it reports the exit (the Docker exec with a
					// FIFO does), while the splitter waits for this
					// client's marker.
					if strings.HasPrefix(line, "ERROR") && !w.failed.Swap(true) {
						pr.CloseWithError(errClientGone)
						cancel(errClientGone)
					}
				},
			})
			// Writes to a client that has gone fail at once, and the other
			// connections stop: the restore has failed.
			pr.CloseWithError(errClientGone)
			if w.err != nil || w.code != 0 {
				cancel(errClientGone)
			}
		}()
		go func() {
			defer wg.Done()
			for pc := range w.queue {
				b := pc.b
				if pc.refs == nil {
					w.segs = append(w.segs, seg{w.written + 1, 0})
				}
				for _, r := range pc.refs {
					w.segs = append(w.segs, seg{w.written + int64(r.at) + 1, r.dump})
				}
				w.written += int64(bytes.Count(b.Bytes(), []byte("\n")))
				if _, err := pw.Write(b.Bytes()); err != nil {
					cancel(errClientGone)
				}
				w.queued.Add(-int64(b.Len()))
				b.Reset()
				l.pool.Put(b)
			}
			pw.Close()
		}()
	}

	err := l.split(r)
	for _, w := range l.workers {
		close(w.queue)
	}
	wg.Wait()
	// The clients' own words first: a failed statement stops its client,
	// and the others are then stopped with errClientGone.
	for _, w := range l.workers {
		if w.failed.Load() || w.err == nil && w.code != 0 {
			return errors.New(w.failure(client, w.code))
		}
	}
	for _, w := range l.workers {
		if w.err != nil && !errors.Is(w.err, errClientGone) {
			return w.err
		}
	}
	if err != nil {
		return err
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}

var errClientGone = errors.New("a SQL client of the restore stopped")

// split reads the dump and hands it out.
func (l *loader) split(r io.Reader) error {
	br := bufio.NewReaderSize(r, 256<<10)
	header := l.buffer()
	inHeader, inDelimiter := true, false
	var create *bytes.Buffer    // a CREATE TABLE statement being read
	var ctl, stmt *bytes.Buffer // statements for the first worker; the data statement being read
	var long []byte             // a line longer than the reader's buffer
	// endHeader sends the session settings read so far to every worker,
	// once: the first line that is not one ends them.
	endHeader := func() error {
		if !inHeader {
			return nil
		}
		inHeader = false
		return l.broadcast(header)
	}
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Only INSERTs of the old one-line format get this long.
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if len(line) == 0 && err != nil {
			if err != io.EOF {
				return err
			}
			break
		}
		l.lineNo++
		switch {
		case stmt != nil:
			l.write(stmt, line, l.lineNo)
		case inHeader && isSessionSetting(line):
			l.write(header, line, l.lineNo)
		case inDelimiter:
			ctl = l.appendCtl(ctl, line, l.lineNo)
			if isDelimiter(line) && delimiterOf(line) == ";" {
				inDelimiter = false
			}
		case create != nil:
			create.Write(line)
		case isDropped(line):
		case isDataStart(line):
			if err := endHeader(); err != nil {
				return err
			}
			if ctl != nil {
				if err := l.control(ctl); err != nil {
					return err
				}
				ctl = nil
			}
			l.filling(rawTable(line))
			stmt = l.buffer()
			l.write(stmt, line, l.lineNo)
		case bytes.HasPrefix(line, []byte("CREATE TABLE `")):
			if err := endHeader(); err != nil {
				return err
			}
			// Keys of tables that got no rows go back at once.
			ctl = l.unfilled(ctl)
			create = l.buffer()
			l.createLine = l.lineNo
			create.Write(line)
		default:
			if err := endHeader(); err != nil {
				return err
			}
			if isDelimiter(line) && delimiterOf(line) != ";" {
				inDelimiter = true
			}
			ctl = l.appendCtl(ctl, line, l.lineNo)
			if ctl.Len() >= 1<<20 {
				if err := l.control(ctl); err != nil {
					return err
				}
				ctl = nil
			}
		}
		// A statement being read into stmt or create took this line.
		if stmt != nil && endsStatement(line) {
			if err := l.data(stmt); err != nil {
				return err
			}
			stmt = nil
		}
		if create != nil && endsStatement(line) {
			ctl = l.created(ctl, create)
			create = nil
		}
		if err != nil {
			if err != io.EOF {
				return err
			}
			break
		}
	}
	if err := endHeader(); err != nil {
		return err
	}
	if stmt != nil {
		// Cut short: let the client say what is wrong with it.
		if err := l.data(stmt); err != nil {
			return err
		}
	}
	if create != nil {
		ctl = l.appendCtl(ctl, create.Bytes(), l.createLine)
	}
	ctl = l.unfilled(ctl)
	if ctl != nil {
		if err := l.control(ctl); err != nil {
			return err
		}
	}
	// Keys of a table whose rows ended the dump.
	if len(l.pending) > 0 {
		b := l.buffer()
		for _, pk := range l.pending {
			b.WriteString(pk.alter)
		}
		l.pending = nil
		return l.control(b)
	}
	return nil
}

// created passes a CREATE TABLE on, without its secondary keys when
// deferKeys finds that safe; their ALTER TABLE waits for the rows.
func (l *loader) created(ctl, create *bytes.Buffer) *bytes.Buffer {
	out, table, alter := deferKeys(create.Bytes())
	if table == "" {
		table = createdTable(create.Bytes())
	}
	if l.spread == nil {
		l.spread = map[string]bool{}
	}
	l.spread[table] = !bytes.Contains(out, []byte("\n  UNIQUE KEY "))
	ctl = l.appendCtl(ctl, out, l.createLine)
	if alter != "" {
		l.pending = append(l.pending, pendingKeys{table: table, alter: alter})
	}
	create.Reset()
	l.pool.Put(create)
	return ctl
}

// filling notes the table data statements go to.
func (l *loader) filling(table string) {
	l.dataTable = table
	l.dataSpread = l.spread[table]
	for i := range l.pending {
		if l.pending[i].table == table {
			l.pending[i].filled = true
		}
	}
}

// unfilled adds the ALTER TABLEs of tables that got no rows to ctl: they
// follow their CREATE on the first worker, in order.
func (l *loader) unfilled(ctl *bytes.Buffer) *bytes.Buffer {
	kept := l.pending[:0]
	for _, pk := range l.pending {
		if pk.filled {
			kept = append(kept, pk)
			continue
		}
		ctl = l.appendCtl(ctl, []byte(pk.alter), 0)
	}
	l.pending = kept
	return ctl
}

// keysBack sends the ALTER TABLE of the table whose rows are all in (the
// barrier before has waited for them) to the least busy worker but the
// first, which goes on with the next table meanwhile.
func (l *loader) keysBack() error {
	for i, pk := range l.pending {
		if pk.table != l.dataTable || !pk.filled {
			continue
		}
		l.pending = append(l.pending[:i], l.pending[i+1:]...)
		// The barrier waited for the other workers; the first one's rows
		// must be in too before the index is built elsewhere.
		if err := l.await(l.workers[0], l.mark(l.workers[0])); err != nil {
			return err
		}
		pick := l.workers[0]
		for _, w := range l.workers[1:] {
			if pick.id == 0 || w.queued.Load() < pick.queued.Load() {
				pick = w
			}
		}
		b := l.buffer()
		b.WriteString(pk.alter)
		return l.send(pick, b)
	}
	return nil
}

func (l *loader) buffer() *bytes.Buffer { return l.pool.Get().(*bytes.Buffer) }

func (l *loader) appendCtl(ctl *bytes.Buffer, line []byte, dumpLine int64) *bytes.Buffer {
	if ctl == nil {
		ctl = l.buffer()
	}
	l.write(ctl, line, dumpLine)
	return ctl
}

// write adds lines to b, which start at the dump's line dumpLine (0: they
// are mbk's own), and notes where they came from.
func (l *loader) write(b *bytes.Buffer, lines []byte, dumpLine int64) {
	m := l.src[b]
	if m == nil {
		m = &srcMap{}
		l.src[b] = m
	}
	if n := len(m.refs); n == 0 || m.refs[n-1].dump == 0 && dumpLine != 0 ||
		m.refs[n-1].dump != 0 && m.refs[n-1].dump+int64(m.lines-m.refs[n-1].at) != dumpLine {
		m.refs = append(m.refs, lineRef{at: m.lines, dump: dumpLine})
	}
	m.lines += bytes.Count(lines, []byte("\n"))
	b.Write(lines)
}

// broadcast sends the session settings to every worker.
func (l *loader) broadcast(header *bytes.Buffer) error {
	for _, w := range l.workers {
		b := l.buffer()
		b.Write(header.Bytes())
		if m := l.src[header]; m != nil {
			l.src[b] = &srcMap{lines: m.lines, refs: m.refs}
		}
		if err := l.send(w, b); err != nil {
			return err
		}
	}
	delete(l.src, header)
	header.Reset()
	l.pool.Put(header)
	return nil
}

// control sends statements that are not data to the first worker, after
// every worker has run the data sent before them, and marks the point.
func (l *loader) control(b *bytes.Buffer) error {
	if l.runLen > 0 {
		for i, w := range l.workers {
			if i > 0 && l.dataOn[i] {
				if err := l.await(w, l.mark(w)); err != nil {
					return err
				}
			}
			l.dataOn[i] = false
		}
		l.runLen = 0
		if err := l.keysBack(); err != nil {
			return err
		}
	}
	w := l.workers[0]
	if err := l.send(w, b); err != nil {
		return err
	}
	l.ddlMark = l.mark(w)
	l.waitedDDL = false
	return nil
}

// data sends one data statement to the least busy worker: the first for
// the first statement of a run (it follows the DDL there in order), any
// other once the first has run that DDL.
func (l *loader) data(b *bytes.Buffer) error {
	pick := l.workers[0]
	if l.runLen > 0 && l.dataSpread {
		// The least busy; among equals (all idle, say) the next after the
		// last one picked, so that idle workers share the rows rather than
		// the first taking them all.
		n := len(l.workers)
		pick = l.workers[(l.lastPick+1)%n]
		for i := 2; i <= n; i++ {
			if w := l.workers[(l.lastPick+i)%n]; w.queued.Load() < pick.queued.Load() {
				pick = w
			}
		}
	}
	l.lastPick = pick.id
	l.runLen++
	if pick.id != 0 && !l.waitedDDL {
		if err := l.await(l.workers[0], l.ddlMark); err != nil {
			return err
		}
		l.waitedDDL = true
	}
	l.dataOn[pick.id] = true
	return l.send(pick, b)
}

func (l *loader) send(w *loadWorker, b *bytes.Buffer) error {
	w.queued.Add(int64(b.Len()))
	pc := piece{b: b}
	if m := l.src[b]; m != nil {
		pc.refs = m.refs
		delete(l.src, b)
	}
	select {
	case w.queue <- pc:
		return nil
	case <-l.ctx.Done():
		return context.Cause(l.ctx)
	}
}

// mark queues a marker on w and returns its number.
func (l *loader) mark(w *loadWorker) uint64 {
	n := w.next
	w.next++
	b := l.buffer()
	fmt.Fprintf(b, "SELECT '%s%d';\n", syncPrefix, n)
	if err := l.send(w, b); err != nil {
		return n // the wait reports the failure
	}
	return n
}

// await waits until w's client has printed marker n.
func (l *loader) await(w *loadWorker, n uint64) error {
	for w.seen.Load() <= n {
		select {
		case <-w.ping:
		case <-w.done:
			if w.seen.Load() > n {
				return nil
			}
			return errClientGone
		case <-l.ctx.Done():
			return context.Cause(l.ctx)
		}
	}
	return nil
}

// markWriter reads a worker's client output for markers.
type markWriter struct {
	w    *loadWorker
	line []byte
}

func (m *markWriter) Write(p []byte) (int, error) {
	for rest := p; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			m.line = append(m.line, rest...)
			break
		}
		m.line = append(m.line, rest[:i]...)
		rest = rest[i+1:]
		if s, ok := strings.CutPrefix(string(m.line), syncPrefix); ok {
			if n, err := strconv.ParseUint(s, 10, 64); err == nil {
				m.w.seen.Store(n + 1)
				select {
				case m.w.ping <- struct{}{}:
				default:
				}
			}
		}
		m.line = m.line[:0]
	}
	return len(p), nil
}

// endsStatement: the line's last byte before the newline is ";".
func endsStatement(line []byte) bool {
	line = bytes.TrimRight(line, "\r\n")
	return len(line) > 0 && line[len(line)-1] == ';'
}

func isDataStart(line []byte) bool {
	return bytes.HasPrefix(line, []byte("INSERT INTO `")) || bytes.HasPrefix(line, []byte("INSERT IGNORE INTO `")) ||
		bytes.HasPrefix(line, []byte("REPLACE INTO `"))
}

// isSessionSetting: a line of the dump's opening: blank, a comment, or a
// versioned comment such as /*!40101 SET NAMES utf8mb4 */; or MariaDB's
// /*M!999999\- enable the sandbox mode */. What follows the opening
// (mysqldump's SET @@GLOBAL.GTID_PURGED, which may run once only) goes to
// the first connection alone.
func isSessionSetting(line []byte) bool {
	t := bytes.TrimSpace(line)
	return len(t) == 0 || bytes.HasPrefix(t, []byte("--")) ||
		bytes.HasPrefix(t, []byte("/*")) && (bytes.HasSuffix(t, []byte("*/")) || bytes.HasSuffix(t, []byte("*/;")))
}

// isDropped: the table locks and key switches a parallel load leaves out.
func isDropped(line []byte) bool {
	t := bytes.TrimRight(line, "\r\n")
	switch {
	case bytes.HasPrefix(t, []byte("LOCK TABLES `")) && bytes.HasSuffix(t, []byte(" WRITE;")):
		return true
	case bytes.Equal(t, []byte("UNLOCK TABLES;")):
		return true
	case bytes.HasPrefix(t, []byte("/*!40000 ALTER TABLE `")) &&
		(bytes.HasSuffix(t, []byte("` DISABLE KEYS */;")) || bytes.HasSuffix(t, []byte("` ENABLE KEYS */;"))):
		return true
	}
	return false
}

func isDelimiter(line []byte) bool { return bytes.HasPrefix(line, []byte("DELIMITER ")) }

func delimiterOf(line []byte) string {
	return strings.TrimSpace(string(line[len("DELIMITER "):]))
}
