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
	"unicode/utf8"

	"github.com/wneessen/go-mail"

	"github.com/mbk-backup/mbk/core/i18n"
	"github.com/mbk-backup/mbk/core/sdk"
)

// defaultSubject gives e.g. "[mbk] production OK 2026-11-27_03-00-00".
const defaultSubject = "[mbk] {{.Pipeline}} {{.Outcome}} {{.Set}}"

// subjectData is what the subject template sees: the report itself, so that
// users can write {{.Host}} or {{.Status}}, plus the event being sent.
type subjectData struct {
	sdk.Report
	Event string // start, success, failure, warning, test, drill
	// Outcome is STARTED, OK, FAILED, WARNING, TEST, DRILL OK or DRILL
	// FAILED, in the report's language (INICIADO, OK, FALLIDO, ...).
	Outcome string
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
	tr := i18n.For(r.Language)
	if err := t.Execute(&b, subjectData{Report: r, Event: event, Outcome: tr.T(outcome(event, r))}); err != nil {
		return "", err
	}
	// A subject is one header line: fold whatever the template produced.
	subject := strings.Join(strings.Fields(b.String()), " ")
	if subject == "" {
		subject = fmt.Sprintf("[mbk] %s %s", r.Pipeline, tr.T(outcome(event, r)))
	}
	return subject, nil
}

// outcome is the word for an event, in English: a key of the catalog.
func outcome(event string, r sdk.Report) string {
	switch event {
	case sdk.EventDrill:
		if r.Status == sdk.EventFailure {
			return i18n.Noop("DRILL FAILED")
		}
		return i18n.Noop("DRILL OK")
	case sdk.EventStart:
		return i18n.Noop("STARTED")
	case sdk.EventSuccess:
		return i18n.Noop("OK")
	case sdk.EventFailure:
		return i18n.Noop("FAILED")
	case sdk.EventWarning:
		return i18n.Noop("WARNING")
	case sdk.EventTest:
		return i18n.Noop("TEST")
	}
	return strings.ToUpper(event)
}

// The report's status words a body shows: T translates them; listed
// here for the catalog.
var _ = []string{
	i18n.Noop("start"), i18n.Noop("success"), i18n.Noop("failure"), i18n.Noop("warning"),
	i18n.Noop("ok"), i18n.Noop("failed"), i18n.Noop("skipped"),
}

//go:embed templates
var templateFiles embed.FS

// bodies are the message bodies of each language, parsed once: the
// template function t translates into that language, col pads a label to a
// column.
type bodies struct {
	text *template.Template
	html *htmltemplate.Template
}

var bodiesByLang = func() map[string]bodies {
	out := map[string]bodies{}
	for _, code := range i18n.Codes {
		funcs := map[string]any{"t": i18n.For(code).T, "col": col}
		out[code] = bodies{
			text: template.Must(template.New("report.txt").Funcs(funcs).ParseFS(templateFiles, "templates/report.txt")),
			html: htmltemplate.Must(htmltemplate.New("report.html").Funcs(funcs).ParseFS(templateFiles, "templates/report.html")),
		}
	}
	return out
}()

func col(width int, label string) string {
	if n := utf8.RuneCountInString(label); n < width {
		return label + strings.Repeat(" ", width-n)
	}
	return label + " "
}

// renderBodies renders the text and HTML bodies in the view's language.
func renderBodies(v bodyView, text, html *bytes.Buffer) error {
	b := bodiesByLang[v.Lang]
	if err := b.text.Execute(text, v); err != nil {
		return fmt.Errorf("render the text body: %w", err)
	}
	if err := b.html.Execute(html, v); err != nil {
		return fmt.Errorf("render the HTML body: %w", err)
	}
	return nil
}

// bodyView is the report as the message bodies show it, every value already
// formatted for people.
type bodyView struct {
	Lang      string // en or es
	Test      bool
	Warning   bool
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
	Passed                                       bool
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
	tr := i18n.For(r.Language)
	v := bodyView{
		Lang: tr.Code(), Warning: outcome(event, r) == "WARNING",
		Test: event == sdk.EventTest, Start: event == sdk.EventStart, Failed: event == sdk.EventFailure || r.Status == sdk.EventFailure,
		Outcome: tr.T(outcome(event, r)), Pipeline: r.Pipeline, File: r.File, Host: r.Host, Set: r.Set, Dir: r.Dir,
		Status: tr.T(r.Status), Committed: r.Committed, Started: clock(r.Started), Finished: clock(r.Finished),
		Error: r.Error, Warnings: r.Warnings, Via: via,
	}
	if v.Host == "" {
		v.Host, _ = os.Hostname()
	}
	if !r.Started.IsZero() && !r.Finished.IsZero() {
		v.Duration = span(r.Duration())
	}
	for _, s := range r.Stages {
		v.Stages = append(v.Stages, stageView{s.Kind, s.Plugin, s.Name, tr.T(s.Status), span(s.Duration), s.Error})
	}
	for _, a := range r.Artifacts {
		av := artifactView{File: a.File, Size: tr.IBytes(uint64(a.Size)), Bytes: tr.Number(a.Size), SHA256: a.SHA256}
		if a.Raw > 0 {
			av.Raw = tr.IBytes(uint64(a.Raw))
		}
		v.Artifacts = append(v.Artifacts, av)
	}
	for _, d := range r.Retention {
		verdict := tr.T("deleted")
		if d.Keep {
			verdict = tr.T("kept")
		}
		v.Retention = append(v.Retention, decisionView{d.Set, verdict, strings.Join(d.Reasons, "; ")})
	}
	if d := r.Drill; d != nil {
		dv := &drillView{Set: d.Set, From: d.From, Verdict: tr.T("PASSED"), Passed: d.OK, Restore: span(d.Restore), Duration: span(d.Duration), Error: d.Error, Sandboxes: d.Sandboxes}
		if !d.OK {
			dv.Verdict = tr.T("FAILED")
		}
		for _, c := range d.Checks {
			cv := checkView{Stage: c.Stage, Name: c.Name, Verdict: tr.T("ok"), Summary: c.Summary, Problems: c.Problems}
			if !c.OK {
				cv.Verdict = tr.T("FAILED")
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
	if err := renderBodies(v, &text, &html); err != nil {
		return nil, err
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
