package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mbk-backup/mbk/core/sdk"
)

// Plan lists one artifact per database. all_databases asks the server.
func (p *plugin) Plan(ctx context.Context, cfg sdk.Config) ([]sdk.Artifact, error) {
	s, err := decodeSettings(cfg)
	if err != nil {
		return nil, err
	}
	names := s.configured()
	if s.AllDatabases {
		ss, err := open(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("list databases: %w", err)
		}
		defer ss.Close()
		if names, err = ss.userDatabases(ctx); err != nil {
			return nil, fmt.Errorf("list databases %s: %w", ss.at, err)
		}
	}
	var out []sdk.Artifact
	for _, n := range names {
		out = append(out, sdk.Artifact{ID: n, Name: n, Format: "sql"})
	}
	return out, nil
}

// Backup dumps one database. It returns nil only when the client exited 0,
// wrote something, and its output ends with the "-- Dump completed" trailer.
func (p *plugin) Backup(ctx context.Context, req sdk.BackupRequest, w io.Writer) (sdk.BackupResult, error) {
	s, err := decodeSettings(req.Config)
	if err != nil {
		return sdk.BackupResult{}, err
	}
	name := req.Artifact
	if s.AllDatabases && slices.Contains(systemDatabases, strings.ToLower(name)) ||
		!s.AllDatabases && !slices.Contains(s.configured(), name) {
		return sdk.BackupResult{}, fmt.Errorf("dump database %q: not one of the databases this stage dumps", name)
	}
	ss, err := open(ctx, s)
	if err != nil {
		return sdk.BackupResult{}, fmt.Errorf("dump database %q: %w", name, err)
	}
	defer ss.Close()
	d, err := p.dump(ctx, ss, s, name, w)
	if err != nil {
		return sdk.BackupResult{}, fmt.Errorf("dump database %q %s: %w", name, ss.at, err)
	}
	m, err := d.toMap()
	if err != nil {
		return sdk.BackupResult{}, err
	}
	return sdk.BackupResult{Details: m, InfoFile: "DB_INFO.txt", InfoText: d.infoText()}, nil
}

func (p *plugin) dump(ctx context.Context, ss *session, s settings, name string, w io.Writer) (details, error) {
	if err := ss.needDump(s.Client); err != nil {
		return details{}, err
	}
	// The server's and the database's facts and the client's version are
	// for the record and for checking the dump afterwards, so they are
	// asked for while the dump runs, in two client runs (execs, which cost
	// dockerd and runc CPU the dump could use): one query, and the client's
	// --version.
	var (
		srv        server
		db         database
		moodleRows [][]string
		factsErr   error
		clientVer  string
		facts      sync.WaitGroup
	)
	facts.Add(2)
	go func() { defer facts.Done(); srv, db, moodleRows, factsErr = ss.facts(ctx, name, s.MoodlePrefix) }()
	go func() { defer facts.Done(); clientVer = ss.clientVersion(ctx) }()
	defer facts.Wait()
	d := details{Client: ss.dump, Container: ss.container, Address: ss.address, ClientContainer: ss.clientContainer, Database: name}

	// No --databases: the dump then holds no CREATE DATABASE or USE, so it
	// can be restored under another name (a copy next to the live site).
	// The charset and collation it would have carried are in the details.
	pre, extra := defaultsFirst(s.ExtraArgs)
	args := append([]string{ss.dump}, pre...)
	if inContainer := ss.container != "" || ss.clientContainer != ""; inContainer && ss.present["stdbuf"] {
		// The dump writes through stdio in 4 KiB pieces when its output is
		// a pipe; a 1 MiB buffer makes it write 250 times fewer, which
		// alone took a 100 MiB dump from 0.77-1.0 s to 0.62-0.69 s
		// (coreutils' stdbuf; the bytes are the same).
		args = append([]string{"stdbuf", "-o", "1M"}, args...)
	}
	args = append(args, dumpFlags(s.User)...)
	args = append(args, "--user="+s.User)
	args = append(args, ss.conn...)
	args = append(args, extra...)
	args = append(args, "--", name)

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	scan := newDumpScan()
	out := &dumpSink{w: w, scan: scan, fail: cancel}
	var stderr lines
	client := path.Base(ss.dump)
	p.log.Info("dump starting", "database", name, "where", ss.at, "client", ss.dump)
	start := time.Now()
	code, err := ss.run.run(runCtx, command{
		args:   args,
		env:    ss.env,
		stdout: out,
		stderr: func(l string) {
			p.log.Warn(client+" said", "database", name, "line", stderr.add(l))
		},
		bulk: true,
		via: func(way, why string) {
			d.Output = way
			if why != "" {
				p.log.Info("dump output through the Engine's exec stream", "database", name, "why not a FIFO", why)
			}
		},
	})
	d.DumpSeconds = time.Since(start).Seconds()
	facts.Wait()
	d.Flavour, d.ServerVersion, d.ServerComment = srv.Flavour, srv.Version, srv.Comment
	if errors.Is(factsErr, errNoDatabase) {
		return d, fmt.Errorf("the server has no database %q", name)
	}
	switch {
	case out.err != nil:
		return d, fmt.Errorf("write the dump: %w", out.err)
	case err != nil:
		return d, err
	case code != 0:
		return d, errors.New(said(client, stderr.failure(code)))
	case out.n == 0:
		return d, fmt.Errorf("%s wrote nothing (%s)", client, stderr.failure(code))
	case !scan.completed():
		return d, fmt.Errorf("%s exited 0 but its output lacks the final \"-- Dump completed\" line, so the dump may be cut short", client)
	case factsErr != nil:
		return d, factsErr
	}
	d.ClientVersion = clientVer
	d.Charset, d.Collation, d.DataBytes = db.Charset, db.Collation, db.DataBytes
	d.Views, d.Routines, d.Triggers, d.Events = len(db.Views), db.Routines, db.Triggers, db.Events

	d.Rows = map[string]int64{}
	for _, t := range scan.created {
		if !slices.Contains(db.Views, t) {
			d.Rows[t] = scan.rows[t]
			d.TotalRows += scan.rows[t]
		}
	}
	d.Tables = len(d.Rows)
	for _, t := range db.Tables {
		if _, ok := d.Rows[t]; !ok {
			d.Skipped = append(d.Skipped, t)
		}
	}
	if len(d.Skipped) > 0 {
		p.log.Warn("tables left out of the dump", "database", name, "tables", strings.Join(d.Skipped, ", "))
	}
	d.Objects = dumpedObjects(db, d.Skipped, extra)
	m, why := parseMoodle(moodleRows, s.MoodlePrefix)
	switch {
	case m != nil:
		d.Moodle = m
		p.log.Info("Moodle site", "database", name, "release", m.Release, "version", m.Version, "prefix", m.Prefix, "plugins", len(m.Plugins))
	case why != "":
		p.log.Warn("no Moodle facts recorded", "database", name, "why", why)
	default:
		p.log.Info("no Moodle facts recorded: no table prefix P has tables Pconfig, Pconfig_plugins and Pfiles", "database", name)
	}
	p.log.Info("dump finished", "database", name, "bytes", out.n, "tables", d.Tables, "rows", d.TotalRows, "seconds", d.DumpSeconds)
	return d, nil
}

// clientVersion is the dump client's own description of itself, for the
// info file; "" when it would not say.
func (ss *session) clientVersion(ctx context.Context) string {
	var out strings.Builder
	code, err := ss.run.run(ctx, command{args: []string{ss.dump, "--version"}, stdout: &out})
	if err != nil || code != 0 {
		return ""
	}
	return strings.Join(strings.Fields(out.String()), " ")
}

// defaultsFirst splits off the option-file options, which the clients accept
// only at the very front of their arguments.
func defaultsFirst(args []string) (front, rest []string) {
	for _, a := range args {
		n, _, _ := strings.Cut(a, "=")
		switch n {
		case "--no-defaults", "--defaults-file", "--defaults-extra-file", "--defaults-group-suffix", "--print-defaults":
			front = append(front, a)
		default:
			rest = append(rest, a)
		}
	}
	return front, rest
}

// said puts a client's name in front of its message unless it is there.
func said(client, msg string) string {
	if strings.HasPrefix(msg, client+":") {
		return msg
	}
	return client + ": " + msg
}

// dumpSink passes the dump to the core's writer, counts it and scans it on
// the way. When the writer fails it cancels the dump (fail) and swallows the
// rest: returning the error to the runner would stop reading the client's
// output without stopping the client, which would then hang on a full pipe.
type dumpSink struct {
	w    io.Writer
	scan *dumpScan
	fail context.CancelCauseFunc
	n    int64
	err  error
}

func (s *dumpSink) Write(p []byte) (int, error) {
	if s.err != nil {
		return len(p), nil
	}
	n, err := s.w.Write(p)
	s.n += int64(n)
	s.scan.Write(p[:n])
	if err != nil {
		s.err = err
		s.fail(err)
	}
	return len(p), nil
}
