package main

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/smtptest"
)

const (
	user     = "backup@example.com"
	password = "s3cret-Pa55word"
	token    = "ya29.oauth2-access-token"
	set      = "2026-11-27_03-00-00"
)

// syncBuffer collects the plugin's log, which go-mail may write from another
// goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newPlugin(t *testing.T) (*plugin, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if strings.Contains(buf.String(), password) || strings.Contains(buf.String(), token) {
			t.Errorf("a secret reached the log:\n%s", buf)
		}
	})
	return &plugin{log: hclog.New(&hclog.LoggerOptions{Output: buf, JSONFormat: true, Level: hclog.Debug})}, buf
}

func strs(v ...string) cty.Value {
	var out []cty.Value
	for _, s := range v {
		out = append(out, cty.StringVal(s))
	}
	return cty.ListVal(out)
}

// baseAttrs is a complete stage body for srv, without TLS or AUTH settings.
func baseAttrs(srv *smtptest.Server) map[string]cty.Value {
	host, port := srv.Addr()
	return map[string]cty.Value{
		"host": cty.StringVal(host),
		"port": cty.NumberIntVal(int64(port)),
		"from": cty.StringVal("Moodle Backup System <backups@example.com>"),
		"to":   strs("ops@example.com", "Jane Admin <jane@example.com>"),
		"cc":   strs("cc@example.com"),
		"bcc":  strs("audit@example.com"),
	}
}

func with(attrs map[string]cty.Value, kv ...any) map[string]cty.Value {
	out := map[string]cty.Value{}
	for k, v := range attrs {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		switch v := kv[i+1].(type) {
		case string:
			out[kv[i].(string)] = cty.StringVal(v)
		case bool:
			out[kv[i].(string)] = cty.BoolVal(v)
		case cty.Value:
			out[kv[i].(string)] = v
		}
	}
	return out
}

func config(t *testing.T, attrs map[string]cty.Value) sdk.Config {
	t.Helper()
	cfg, err := sdk.NewConfig(sdk.KindNotify, schema, attrs)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func report(status string) sdk.Report {
	start := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	r := sdk.Report{
		Pipeline: "production", File: "/etc/mbk/production.hcl", Host: "moodle1", Set: set,
		Dir: "/backups/production/" + set, Status: status, Committed: status != sdk.EventFailure,
		Started: start, Finished: start.Add(2*time.Minute + 13*time.Second),
		Stages: []sdk.StageReport{
			{Kind: "dump", Plugin: "mysql", Name: "db", Status: "ok", Duration: 95 * time.Second},
			{Kind: "archive", Plugin: "volume", Name: "moodledata", Status: "ok", Duration: 30 * time.Second},
		},
		Artifacts: []sdk.ArtifactReport{
			{Stage: "db", Plugin: "mysql", File: "moodle_" + set + ".sql.gz", Size: 12897280, Raw: 52428800,
				SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
			{Stage: "moodledata", Plugin: "volume", File: "moodledata_" + set + ".tar.gz", Size: 1536, Raw: 10240,
				SHA256: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"},
		},
		Retention: []sdk.Decision{
			{Set: set, Keep: true, Reasons: []string{"newest", "daily 1"}},
			{Set: "2026-11-01_03-00-00", Keep: false, Reasons: []string{"older than every window"}},
		},
		Warnings: []string{"moodledata has 3 files that changed while archiving"},
		LogTail:  []string{"03:02:10 dump db: started", "03:02:13 dump db: mariadb-dump exited 2"},
	}
	if status == sdk.EventFailure {
		r.Stages[0].Status, r.Stages[0].Error = "failed", `dump database "moodle" in container "db": mariadb-dump: Access denied for user 'moodle'@'localhost'`
		r.Error = r.Stages[0].Error
		r.Artifacts, r.Retention = nil, nil
	}
	return r
}

// mailParts is a received message taken apart.
type mailParts struct {
	header netmail.Header
	text   string
	html   string
}

func parseMail(t *testing.T, raw []byte) mailParts {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse message: %v\n%s", err, raw)
	}
	out := mailParts{header: m.Header}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type = %q (%v), want multipart/alternative", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read part: %v", err)
		}
		// NextPart undoes the quoted-printable transfer encoding itself.
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("read part: %v", err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch ct {
		case "text/plain":
			out.text = string(b)
		case "text/html":
			out.html = string(b)
		default:
			t.Errorf("unexpected part %q", ct)
		}
	}
	if out.text == "" || out.html == "" {
		t.Fatalf("want a text and an HTML part; text=%q html=%q", out.text, out.html)
	}
	return out
}

func (m mailParts) subject(t *testing.T) string {
	t.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(m.header.Get("Subject"))
	if err != nil {
		t.Fatalf("decode subject: %v", err)
	}
	return s
}

func assertContains(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, got)
		}
	}
}
