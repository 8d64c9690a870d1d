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
		{"drill that passed", defaultSubject, sdk.EventDrill, "[mbk] production DRILL OK " + set},
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

// TestDrillMessage: a drill's e-mail says it was a drill (the site was not
// touched), its verdict, the restore time and each check, with the blob that
// failed named, in both parts.
func TestDrillMessage(t *testing.T) {
	start := time.Date(2026, 12, 3, 5, 0, 0, 0, time.UTC)
	r := sdk.Report{Pipeline: "production", Host: "moodle1", Set: set, Status: sdk.EventFailure, Started: start, Finished: start,
		Error: "checks failed: archive \"volume\" references",
		Drill: &sdk.DrillReport{Set: set, From: "s3", OK: false, Restore: 95 * time.Second, Duration: 2 * time.Minute,
			Checks: []sdk.DrillCheck{
				{Stage: `dump "mysql"`, Check: sdk.Check{Name: "rows", OK: true, Summary: "4 tables as recorded"}},
				{Stage: `archive "volume"`, Check: sdk.Check{Name: "references", OK: false, Summary: "1 of 9 missing",
					Problems: []string{"missing blob 3f2a: mod_resource/content/<Plan>.pdf"}}},
			}}}
	tmpl, err := parseSubject(defaultSubject)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := renderSubject(tmpl, sdk.EventDrill, r); got != "[mbk] production DRILL FAILED "+set {
		t.Errorf("subject %q", got)
	}
	v := newBodyView(sdk.EventDrill, r, "test")
	var text, html bytes.Buffer
	if err := renderBodies(v, &text, &html); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Restore drill FAILED: pipeline production", "site itself was not touched", "Restore time: 1m35s",
		"Set:          " + set + " (s3)", "FAILED  archive \"volume\" references: 1 of 9 missing", "- missing blob 3f2a: mod_resource/content/<Plan>.pdf",
		"ok  dump \"mysql\" rows"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text part lacks %q:\n%s", want, text.String())
		}
	}
	for _, want := range []string{"Restore drill FAILED", "1m35s", "&lt;Plan&gt;.pdf"} {
		if !strings.Contains(html.String(), want) {
			t.Errorf("HTML part lacks %q", want)
		}
	}
	if strings.Contains(text.String(), "Backup ") {
		t.Error("a drill's e-mail calls itself a backup")
	}
}

// TestDrillMessageSpanish: the same drill, reported to a pipeline with
// language = "es": subject, text and HTML in Spanish, and the HTML heading
// coloured by the verdict, not by its words. The words in the report itself
// (check summaries, problems) are the plugins' and stay as they are.
func TestDrillMessageSpanish(t *testing.T) {
	start := time.Date(2026, 12, 3, 5, 0, 0, 0, time.UTC)
	drill := func(ok bool) sdk.Report {
		status := sdk.EventSuccess
		if !ok {
			status = sdk.EventFailure
		}
		return sdk.Report{Pipeline: "production", Host: "moodle1", Set: set, Status: status, Started: start, Finished: start, Language: "es",
			Drill: &sdk.DrillReport{Set: set, From: "s3", OK: ok, Restore: 95 * time.Second, Duration: 2 * time.Minute,
				Checks: []sdk.DrillCheck{{Stage: `archive "volume"`, Check: sdk.Check{Name: "references", OK: ok, Summary: "1 of 9 missing"}}}}}
	}
	tmpl, err := parseSubject(defaultSubject)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ok                     bool
		subject, verdict, mark string
		colour                 string
	}{
		{false, "[mbk] production SIMULACRO FALLIDO " + set, "FALLIDO", "FALLIDO  archive", "#b00020"},
		{true, "[mbk] production SIMULACRO OK " + set, "SUPERADO", "ok  archive", "#1b5e20"},
	} {
		r := drill(tc.ok)
		if got, _ := renderSubject(tmpl, sdk.EventDrill, r); got != tc.subject {
			t.Errorf("subject %q, want %q", got, tc.subject)
		}
		var text, html bytes.Buffer
		if err := renderBodies(newBodyView(sdk.EventDrill, r, "test"), &text, &html); err != nil {
			t.Fatal(err)
		}
		assertContains(t, "Spanish text", text.String(), "Simulacro de restauración "+tc.verdict+": pipeline production en moodle1",
			"el\nsitio real no se tocó", "Conjunto:     "+set+" (s3)", "Resultado:    "+tc.verdict,
			"Restauración: 1m35s (el tiempo de volver a poner el sitio en marcha)", "Comprobaciones", tc.mark)
		assertContains(t, "Spanish HTML", html.String(), `<html lang="es">`, "color: "+tc.colour, "Simulacro de restauración "+tc.verdict, "<th>Comprobación</th>")
		if strings.Contains(text.String(), "Restore drill") || strings.Contains(html.String(), "Restore drill") {
			t.Error("the Spanish drill e-mail is English")
		}
	}
}
