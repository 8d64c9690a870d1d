package main

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"os"
	"strings"
	"text/template"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/wneessen/go-mail"

	"github.com/mbk-backup/mbk/core/sdk"
)

// defaultSubject gives e.g. "[mbk] production OK 2026-11-27_03-00-00".
const defaultSubject = "[mbk] {{.Pipeline}} {{.Outcome}} {{.Set}}"

// subjectData is what the subject template sees: the report itself, so that
// users can write {{.Host}} or {{.Status}}, plus the event being sent.
type subjectData struct {
	sdk.Report
	Event   string // start, success, failure, warning, test, drill
	Outcome string // STARTED, OK, FAILED, WARNING, TEST, DRILL OK, DRILL FAILED
}

type subjectTemplate = *template.Template

var subjectFuncs = template.FuncMap{"upper": strings.ToUpper, "lower": strings.ToLower}

// parseSubject parses a subject template and runs it once on a sample
// report, so that a misspelt field fails validation instead of a 3 a.m. run.
func parseSubject(text string) (subjectTemplate, error) {
	t, err := template.New("subject").Funcs(subjectFuncs).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	sample := sdk.Report{Pipeline: "production", Host: "moodle1", Set: "2026-11-27_03-00-00", Status: sdk.EventSuccess}
	if _, err := renderSubject(t, sdk.EventSuccess, sample); err != nil {
		return nil, err
	}
	return t, nil
}

func renderSubject(t subjectTemplate, event string, r sdk.Report) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, subjectData{Report: r, Event: event, Outcome: outcome(event, r)}); err != nil {
		return "", err
	}
	// A subject is one header line: fold whatever the template produced.
	subject := strings.Join(strings.Fields(b.String()), " ")
	if subject == "" {
		subject = fmt.Sprintf("[mbk] %s %s", r.Pipeline, outcome(event, r))
	}
	return subject, nil
}

func outcome(event string, r sdk.Report) string {
	switch event {
	case sdk.EventDrill:
		if r.Status == sdk.EventFailure {
			return "DRILL FAILED"
		}
		return "DRILL OK"
	case sdk.EventStart:
		return "STARTED"
	case sdk.EventSuccess:
		return "OK"
	case sdk.EventFailure:
		return "FAILED"
	}
	return strings.ToUpper(event)
}

//go:embed templates
var templateFiles embed.FS

var (
	textBody = template.Must(template.New("report.txt").ParseFS(templateFiles, "templates/report.txt"))
	htmlBody = htmltemplate.Must(htmltemplate.New("report.html").ParseFS(templateFiles, "templates/report.html"))
)

// bodyView is the report as the message bodies show it, every value already
// formatted for people.
type bodyView struct {
	Test      bool
	Start     bool // the run has just begun
	Failed    bool
	Outcome   string
	Pipeline  string
	File      string
	Host      string
	Set       string
	Dir       string
	Status    string
	Committed bool
	Started   string
	Finished  string
	Duration  string
	Error     string
	Stages    []stageView
	Artifacts []artifactView
	Retention []decisionView
	Warnings  []string
	LogTail   []string
	Via       string
	Drill     *drillView
}

// drillView is a drill's result for people.
type drillView struct {
	Set, From, Verdict, Restore, Duration, Error string
	Sandboxes                                    []string
	Checks                                       []checkView
}

type checkView struct {
	Stage, Name, Verdict, Summary string
	Problems                      []string
}

type stageView struct{ Kind, Plugin, Name, Status, Duration, Error string }

type artifactView struct{ File, Size, Bytes, Raw, SHA256 string }

type decisionView struct{ Set, Verdict, Reasons string }

func newBodyView(event string, r sdk.Report, via string) bodyView {
	v := bodyView{
		Test: event == sdk.EventTest, Start: event == sdk.EventStart, Failed: event == sdk.EventFailure || r.Status == sdk.EventFailure,
		Outcome: outcome(event, r), Pipeline: r.Pipeline, File: r.File, Host: r.Host, Set: r.Set, Dir: r.Dir,
		Status: r.Status, Committed: r.Committed, Started: clock(r.Started), Finished: clock(r.Finished),
		Error: r.Error, Warnings: r.Warnings, Via: via,
	}
	if v.Host == "" {
		v.Host, _ = os.Hostname()
	}
	if !r.Started.IsZero() && !r.Finished.IsZero() {
		v.Duration = span(r.Duration())
	}
	for _, s := range r.Stages {
		v.Stages = append(v.Stages, stageView{s.Kind, s.Plugin, s.Name, s.Status, span(s.Duration), s.Error})
	}
	for _, a := range r.Artifacts {
		av := artifactView{File: a.File, Size: humanize.IBytes(uint64(a.Size)), Bytes: humanize.Comma(a.Size), SHA256: a.SHA256}
		if a.Raw > 0 {
			av.Raw = humanize.IBytes(uint64(a.Raw))
		}
		v.Artifacts = append(v.Artifacts, av)
	}
	for _, d := range r.Retention {
		verdict := "deleted"
		if d.Keep {
			verdict = "kept"
		}
		v.Retention = append(v.Retention, decisionView{d.Set, verdict, strings.Join(d.Reasons, "; ")})
	}
	if d := r.Drill; d != nil {
		dv := &drillView{Set: d.Set, From: d.From, Verdict: "PASSED", Restore: span(d.Restore), Duration: span(d.Duration), Error: d.Error, Sandboxes: d.Sandboxes}
		if !d.OK {
			dv.Verdict = "FAILED"
		}
		for _, c := range d.Checks {
			cv := checkView{Stage: c.Stage, Name: c.Name, Verdict: "ok", Summary: c.Summary, Problems: c.Problems}
			if !c.OK {
				cv.Verdict = "FAILED"
			}
			dv.Checks = append(dv.Checks, cv)
		}
		v.Drill = dv
	}
	// The log tail is for finding out what went wrong; on success it is noise.
	if v.Failed {
		v.LogTail = r.LogTail
	}
	return v
}

// buildMessage renders the report into one multipart/alternative message.
// via describes the transport, for the test message's body.
func buildMessage(s settings, event string, r sdk.Report, via string) (*mail.Msg, error) {
	subject, err := renderSubject(s.subject, event, r)
	if err != nil {
		return nil, fmt.Errorf("render the subject template: %w", err)
	}
	v := newBodyView(event, r, via)
	var text, html bytes.Buffer
	if err := textBody.Execute(&text, v); err != nil {
		return nil, fmt.Errorf("render the text body: %w", err)
	}
	if err := htmlBody.Execute(&html, v); err != nil {
		return nil, fmt.Errorf("render the HTML body: %w", err)
	}

	m := mail.NewMsg()
	if err := m.From(s.From); err != nil {
		return nil, fmt.Errorf("from %q: %w", s.From, err)
	}
	for _, h := range []struct {
		name  string
		set   func(...string) error
		addrs []string
	}{{"to", m.To, s.To}, {"cc", m.Cc, s.Cc}, {"bcc", m.Bcc, s.Bcc}} {
		if len(h.addrs) == 0 {
			continue
		}
		if err := h.set(h.addrs...); err != nil {
			return nil, fmt.Errorf("%s: %w", h.name, err)
		}
	}
	m.Subject(subject)
	m.SetDate()
	m.SetMessageID()
	m.SetUserAgent("mbk-plugin-smtp/" + version)
	// RFC 3834: tells vacation responders and ticket systems not to answer.
	m.SetGenHeader(mail.Header("Auto-Submitted"), "auto-generated")
	if v.Failed {
		m.SetImportance(mail.ImportanceHigh)
	}
	m.SetBodyString(mail.TypeTextPlain, text.String())
	m.AddAlternativeString(mail.TypeTextHTML, html.String())
	return m, nil
}

func clock(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("2006-01-02 15:04:05 MST")
}

func span(d time.Duration) string {
	switch {
	case d == 0:
		return "" // a stage that never ran
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
