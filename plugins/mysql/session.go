package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"

	"github.com/mbk-backup/mbk/core/docker"
)

// session is one conversation with a database server: where its clients
// run is settled, and which of them are there is known.
type session struct {
	run runner
	// at says where the server is, for messages: `in container "db"` or
	// `at 127.0.0.1:3306`.
	at   string
	user string
	env  []string
	// conn are the client options that reach a server over TCP; none when
	// the clients run in the server's container and use its socket.
	conn []string
	// container is the server's container; address (host:port) and
	// clientContainer are set instead for a server reached over TCP.
	container, address, clientContainer string
	// present lists the candidate programs found.
	present map[string]bool
	dump    string // "" when no dump client was found
	sql     string // "" when no SQL client was found
	// sandbox: the SQL client takes --sandbox (hasSandbox), and is given it.
	sandbox bool
}

// open settles where the clients run, which for a container means finding
// it running, and probes them. The caller closes the session.
func open(ctx context.Context, s settings) (*session, error) {
	ss := &session{user: s.User, env: s.env()}
	if s.Host != "" {
		port := strconv.Itoa(s.port())
		ss.address = net.JoinHostPort(s.Host, port)
		ss.at = "at " + ss.address
		ss.conn = []string{"--host=" + s.Host, "--port=" + port, "--protocol=TCP"}
		ss.run = hostRunner{}
		if s.ClientContainer != "" {
			r, err := openContainer(ctx, docker.Target{Container: s.ClientContainer})
			if err != nil {
				return nil, err
			}
			ss.run, ss.clientContainer = r, r.name
			ss.at += fmt.Sprintf(" through container %q", r.name)
		}
	} else {
		r, err := openContainer(ctx, s.target())
		if err != nil {
			return nil, err
		}
		ss.run, ss.container, ss.at = r, r.name, fmt.Sprintf("in container %q", r.name)
	}

	dumps := []string{"mariadb-dump", "mysqldump"}
	if s.Client != "" {
		dumps = []string{s.Client}
	}
	present, err := ss.run.look(ctx, append(dumps, "mariadb", "mysql", "stdbuf"))
	if err != nil {
		ss.Close()
		return nil, err
	}
	ss.present = present
	for _, c := range dumps {
		if ss.present[c] {
			ss.dump = c
			break
		}
	}
	// The SQL client of the dump client's own family first: a MariaDB image
	// may carry both names, and the pair then comes from one package.
	sqls := []string{"mariadb", "mysql"}
	if ss.dump != "" && strings.HasPrefix(path.Base(ss.dump), "mysql") {
		sqls = []string{"mysql", "mariadb"}
	}
	for _, c := range sqls {
		if ss.present[c] {
			ss.sql = c
			break
		}
	}
	return ss, nil
}

func (ss *session) Close() { ss.run.Close() }

// needDump fails when no dump client was found.
func (ss *session) needDump(configured string) error {
	if ss.dump != "" {
		return nil
	}
	if configured != "" {
		return fmt.Errorf("dump client %q not found %s", configured, ss.run.where())
	}
	return fmt.Errorf("neither mariadb-dump nor mysqldump found %s", ss.run.where())
}

// needSQL fails when no SQL client was found.
func (ss *session) needSQL() error {
	if ss.sql == "" {
		return fmt.Errorf("neither mariadb nor mysql client found %s", ss.run.where())
	}
	return nil
}

// query runs SQL (sent on stdin, so nothing of it shows in a process list)
// through the SQL client and returns the result rows.
// NULL comes back as the string "NULL", as the client prints it.
func (ss *session) query(ctx context.Context, sql string) ([][]string, error) {
	if err := ss.needSQL(); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	var stderr lines
	code, err := ss.run.run(ctx, command{
		args:   ss.sqlCmd("--batch", "--skip-column-names"),
		env:    ss.env,
		stdin:  strings.NewReader(sql),
		stdout: &out,
		stderr: func(l string) { stderr.add(l) },
	})
	if err != nil {
		return nil, err
	}
	if code != 0 {
		return nil, fmt.Errorf("%s: %s", ss.sql, stderr.failure(code))
	}
	var rows [][]string
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if l == "" {
			continue
		}
		fields := strings.Split(l, "\t")
		for i, f := range fields {
			fields[i] = unescapeBatch(f)
		}
		rows = append(rows, fields)
	}
	return rows, nil
}

// queryEach runs one query like query, but hands fn each result row as the
// client prints it (--quick: the client holds no result either), so that a
// result of millions of rows passes through in constant memory. An error
// from fn stops the client and is returned.
func (ss *session) queryEach(ctx context.Context, sql string, fn func(row []string) error) error {
	if err := ss.needSQL(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var fnErr error
	rows := &lineWriter{fn: func(l string) {
		if fnErr != nil || l == "" {
			return
		}
		fields := strings.Split(l, "\t")
		for i, f := range fields {
			fields[i] = unescapeBatch(f)
		}
		if fnErr = fn(fields); fnErr != nil {
			// Stops the client; its output is swallowed until it has.
			cancel(fnErr)
		}
	}}
	var stderr lines
	code, err := ss.run.run(ctx, command{
		args:   ss.sqlCmd("--batch", "--skip-column-names", "--quick"),
		env:    ss.env,
		stdin:  strings.NewReader(sql),
		stdout: rows,
		stderr: func(l string) { stderr.add(l) },
	})
	switch {
	case fnErr != nil:
		return fnErr
	case err != nil:
		return err
	case code != 0:
		return fmt.Errorf("%s: %s", ss.sql, stderr.failure(code))
	}
	rows.flush()
	return fnErr
}

// sqlCmd is the SQL client's command line. MariaDB's client echoes a failed
// statement to stderr, which during a restore is a line of table data: the
// option that stops it is unknown to MySQL's client, hence only for mariadb
// and "loose". --binary-mode, always: the client then obeys none of its own
// commands in what it reads but DELIMITER and \C, and keeps NUL and \r\n
// as they come (guard.go); --sandbox when the client has it.
func (ss *session) sqlCmd(args ...string) []string {
	cmd := []string{ss.sql, "--binary-mode"}
	if ss.sandbox {
		cmd = append(cmd, "--sandbox")
	}
	if path.Base(ss.sql) == "mariadb" {
		cmd = append(cmd, "--loose-skip-print-query-on-error")
	}
	cmd = append(cmd, "--user="+ss.user, "--default-character-set=utf8mb4")
	cmd = append(cmd, ss.conn...)
	return append(cmd, args...)
}

// hasSandbox asks the SQL client whether it takes --sandbox (MariaDB
// 10.5.25, 10.6.18, 10.11.8, 11.0.6 and later): its --help lists it. An
// older client, or MySQL's, runs without: --binary-mode and checkDump then
// are the protection.
func (ss *session) hasSandbox(ctx context.Context) bool {
	var out bytes.Buffer
	code, err := ss.run.run(ctx, command{args: []string{ss.sql, "--no-defaults", "--help"}, stdout: &out})
	return err == nil && code == 0 && bytes.Contains(out.Bytes(), []byte("\n  --sandbox "))
}

// unescapeBatch undoes the escaping of the client's batch output, where tab,
// newline, backslash and NUL inside a value are written as \t, \n, \\, \0.
func unescapeBatch(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case '0':
			b.WriteByte(0)
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// lines keeps the last stderr lines of a client, for error messages in the
// server's own words.
type lines struct{ last []string }

const keepLines = 8

// maxLine caps what is kept and logged of one stderr line: a client that
// echoes a failed statement would otherwise copy table data (password
// hashes included) into logs and reports.
const maxLine = 300

// add keeps line and returns it as it may be logged.
func (l *lines) add(line string) string {
	if len(line) > maxLine {
		line = strings.ToValidUTF8(line[:maxLine], "") + " [...]"
	}
	if strings.TrimSpace(line) != "" {
		l.last = append(l.last, line)
		if len(l.last) > keepLines {
			l.last = l.last[1:]
		}
	}
	return line
}

// failure describes a failed run: the last stderr lines that are not mere
// warnings (MySQL 8 warns about MYSQL_PWD on every run), else the exit code.
func (l *lines) failure(code int) string {
	var picked []string
	for _, s := range l.last {
		if !strings.Contains(s, "[Warning]") && !strings.HasPrefix(s, "Warning:") {
			picked = append(picked, s)
		}
	}
	if len(picked) == 0 {
		picked = l.last
	}
	if len(picked) > 3 {
		picked = picked[len(picked)-3:]
	}
	if len(picked) == 0 {
		return fmt.Sprintf("exited with code %d and said nothing", code)
	}
	return strings.Join(picked, "; ")
}

// quoteIdent quotes a database or table name for SQL.
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// quoteString quotes a value as an SQL string literal.
func quoteString(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `'`, `\'`)
	return "'" + s + "'"
}
