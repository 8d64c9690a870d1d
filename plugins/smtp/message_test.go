package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/sdk"
)

func TestSubject(t *testing.T) {
	r := sdk.Report{Pipeline: "production", Host: "moodle1", Set: set, Status: sdk.EventSuccess}
	tests := []struct {
		name, template, event, want string
	}{
		{"default success", defaultSubject, sdk.EventSuccess, "[mbk] production OK " + set},
		{"default failure", defaultSubject, sdk.EventFailure, "[mbk] production FAILED " + set},
		{"default warning", defaultSubject, sdk.EventWarning, "[mbk] production WARNING " + set},
		{"default test without a set", defaultSubject, sdk.EventTest, "[mbk] production TEST"},
		{"custom", "Backup {{.Outcome | lower}} on {{.Host}} ({{.Event}}, {{.Status}})", sdk.EventSuccess, "Backup ok on moodle1 (success, success)"},
		{"folded onto one line", "a\r\nBcc: evil@example.com\n  b", sdk.EventSuccess, "a Bcc: evil@example.com b"},
		{"empty result", "{{if false}}x{{end}}", sdk.EventFailure, "[mbk] production FAILED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := parseSubject(tt.template)
			if err != nil {
				t.Fatal(err)
			}
			rep := r
			if tt.event == sdk.EventTest {
				rep.Set = ""
			}
			got, err := renderSubject(tmpl, tt.event, rep)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("subject = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestHTMLEscapes checks that text from the run (error messages carry
// whatever a server said) cannot inject markup into the HTML part.
func TestHTMLEscapes(t *testing.T) {
	s, d := load(config(t, validAttrs()))
	if d.HasErrors() {
		t.Fatal(d)
	}
	r := report(sdk.EventFailure)
	r.Error = `mariadb-dump: <script>alert("x")</script> & more`
	r.Finished = r.Started.Add(time.Minute)
	m, err := buildMessage(s, sdk.EventFailure, r, describe(s))
	if err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	if _, err := m.WriteTo(&raw); err != nil {
		t.Fatal(err)
	}
	mp := parseMail(t, raw.Bytes())
	if strings.Contains(mp.html, "<script>") {
		t.Errorf("the HTML part carries raw markup from the report:\n%s", mp.html)
	}
	assertContains(t, "HTML body", mp.html, "&lt;script&gt;", "&amp; more")
	assertContains(t, "text body", mp.text, `<script>alert("x")</script> & more`)
}
