package main

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mbk-backup/mbk/core/i18n"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/testing/smtptest"
)

// TestSpanishEmail: a pipeline with language = "es" mails its reports in
// Spanish, through the real smtp plugin to a real SMTP server over implicit
// TLS: the subject, the text part and the HTML part, with Spanish numbers
// (1.048.576 bytes, 1,0 MiB). The run's output and logs stay English, and
// mbk itself runs without a locale, as cron runs it. With MBK_CAPTURE_DIR
// set, the messages are written there (email-es-*.txt, .html) to be read.
func TestSpanishEmail(t *testing.T) {
	const password = "contraseña de aplicación"
	srv := smtptest.Start(t, smtptest.Options{TLS: "implicit", Username: "backups@example.com", Password: password, RequireAuth: true, AllowLogin: true})
	host, port := srv.Addr()
	env := []string{"SMTP_PASSWORD=" + password, "LANG=C"} // cron's locale: none
	es := i18n.New(i18n.Spanish)

	spanish := func(file string) {
		src := readFile(t, file)
		writeFile(t, filepath.Dir(file), filepath.Base(file), strings.Replace(src, "pipeline \"mail\" {\n", "pipeline \"mail\" {\n  language = \"es\"\n", 1))
	}

	t.Run("success", func(t *testing.T) {
		file, root := smtpPipeline(t, "ok", host, port, "implicit", srv.CAFile())
		spanish(file)
		before := len(srv.Messages())
		r := mbk(t, runOpts{env: env}, "run", file)
		if r.code != 0 {
			t.Fatalf("run: %s", r)
		}
		if !strings.Contains(r.stdout, "committed in") {
			t.Errorf("the run's own output is not English:\n%s", r.stdout)
		}
		set := sets(t, root)[0]
		man, err := repo.ReadManifest(filepath.Join(root, set))
		if err != nil {
			t.Fatal(err)
		}
		m := srv.WaitMessages(t, before+1, 30*time.Second)[before]
		if !m.TLS {
			t.Error("the message did not go over TLS")
		}
		subject, text, html := mailParts(t, m.Data)
		if subject != "[mbk] mail OK "+set {
			t.Errorf("subject %q", subject)
		}
		a := man.Artifacts[0]
		for _, want := range []string{
			"Respaldo OK: pipeline mail en ", "Conjunto:  " + set, "Estado:    correcto", "Ubicación: " + filepath.Join(root, set),
			"Etapas", `dump faulty "faulty": ok en `, "Archivos", "tamaño: " + es.IBytes(uint64(a.Size)) + " (" + es.Number(a.Size) + " bytes)",
			es.IBytes(uint64(a.RawSize)) + " sin comprimir", "mbk, respaldos de Moodle",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("text part lacks %q", want)
			}
		}
		if a.Size < 1000 || !strings.Contains(es.Number(a.Size), ".") {
			t.Errorf("artifact size %d: too small to show the Spanish thousands separator", a.Size)
		}
		for _, want := range []string{`<html lang="es">`, "Respaldo OK: pipeline mail en ", "<th align=\"left\">Conjunto</th>", "<th>Tamaño</th>", es.Number(a.Size) + " bytes"} {
			if !strings.Contains(html, want) {
				t.Errorf("HTML part lacks %q", want)
			}
		}
		for _, english := range []string{"Backup OK", "Stored in", "Files", "uncompressed"} {
			if strings.Contains(text, english) || strings.Contains(html, english) {
				t.Errorf("the Spanish message still says %q", english)
			}
		}
		capture(t, "email-es-success.txt", "Subject: "+subject+"\n\n"+text)
		capture(t, "email-es-success.html", html)
	})

	t.Run("failure", func(t *testing.T) {
		file, _ := smtpPipeline(t, "error", host, port, "implicit", srv.CAFile())
		spanish(file)
		before := len(srv.Messages())
		if r := mbk(t, runOpts{env: env}, "run", file); r.code != 1 {
			t.Fatalf("want exit 1: %s", r)
		}
		m := srv.WaitMessages(t, before+1, 30*time.Second)[before]
		subject, text, _ := mailParts(t, m.Data)
		if !strings.HasPrefix(subject, "[mbk] mail FALLIDO") {
			t.Errorf("subject %q", subject)
		}
		for _, want := range []string{"Respaldo FALLIDO: pipeline mail", "Guardado:  esta ejecución no dejó ningún conjunto de respaldo", "ERROR", "disk on fire", `dump faulty "faulty": fallida en `} {
			if !strings.Contains(text, want) {
				t.Errorf("text part lacks %q:\n%s", want, text)
			}
		}
		capture(t, "email-es-failure.txt", "Subject: "+subject+"\n\n"+text)
	})

	t.Run("test message", func(t *testing.T) {
		file, _ := smtpPipeline(t, "ok", host, port, "implicit", srv.CAFile())
		spanish(file)
		before := len(srv.Messages())
		// LANG=es_ES would not matter: the pipeline's language decides.
		r := mbk(t, runOpts{env: env}, "notify", "test", file)
		if r.code != 0 {
			t.Fatalf("notify test: %s", r)
		}
		m := srv.WaitMessages(t, before+1, 30*time.Second)[before]
		subject, text, _ := mailParts(t, m.Data)
		if subject != "[mbk] mail PRUEBA" || !strings.Contains(text, "Este es un mensaje de prueba de mbk") || !strings.Contains(text, "Si puede leerlo") {
			t.Errorf("test message: subject %q\n%s", subject, text)
		}
	})
}

// TestLanguageOfCommands: LANG=es_ES.UTF-8 gives Spanish headings in mbk
// list, info and status and Spanish --help; --lang en gives English back
// whatever the locale; JSON, the monitoring line and exit codes do not
// change with the language. With MBK_CAPTURE_DIR set, the Spanish list,
// status and help are written there.
func TestLanguageOfCommands(t *testing.T) {
	file, root := smtpPipeline(t, "ok", "127.0.0.1", 9, "none", "")
	// No mail server: the runs commit and exit 3 (notify failed).
	for range 3 {
		if r := mbk(t, runOpts{env: []string{"SMTP_PASSWORD=x"}}, "run", file); r.code != 3 {
			t.Fatalf("run: %s", r)
		}
	}
	if n := len(sets(t, root)); n != 3 {
		t.Fatalf("want 3 sets, have %d", n)
	}
	es := []string{"LANG=es_ES.UTF-8"}
	var en []string

	list := mbk(t, runOpts{env: es}, "list", file)
	for _, want := range []string{"CONJUNTO", "TIPO", "ESTADO", "TAMAÑO", "SIMULACRO", "3 conjuntos"} {
		if !strings.Contains(list.stdout, want) {
			t.Errorf("Spanish list lacks %q:\n%s", want, list.stdout)
		}
	}
	capture(t, "list-es.txt", list.stdout)
	if l := mbk(t, runOpts{env: es}, "--lang", "en", "list", file); !strings.Contains(l.stdout, "SET") || !strings.Contains(l.stdout, "3 sets") || strings.Contains(l.stdout, "CONJUNTO") {
		t.Errorf("--lang en did not give English:\n%s", l.stdout)
	}
	jes, jen := mbk(t, runOpts{env: es}, "list", file, "--json"), mbk(t, runOpts{env: en}, "list", file, "--json")
	if jes.code != 0 || jes.stdout != jen.stdout {
		t.Errorf("list --json changes with the language:\n%s\n---\n%s", jes.stdout, jen.stdout)
	}

	info := mbk(t, runOpts{env: es}, "info", file)
	for _, want := range []string{"Conjunto:", "Servidor:", "Inicio:", "ETAPA", "VERSIÓN", "nunca se ha hecho un simulacro"} {
		if !strings.Contains(info.stdout, want) {
			t.Errorf("Spanish info lacks %q:\n%s", want, info.stdout)
		}
	}

	ses, sen := mbk(t, runOpts{env: es}, "status", file), mbk(t, runOpts{env: en}, "status", file)
	if ses.code != sen.code {
		t.Errorf("status exits %d in Spanish, %d in English", ses.code, sen.code)
	}
	// The monitoring line (its ages aside, which tick) is the same.
	first := func(s string) string {
		line := strings.SplitN(s, "\n", 2)[0]
		return line[:strings.Index(line, ", ")] + line[strings.Index(line, " | "):]
	}
	if !strings.HasPrefix(ses.stdout, "MBK OK - mail: newest set ") || first(ses.stdout) != first(sen.stdout) {
		t.Errorf("the monitoring line changes with the language:\n%s\n%s", ses.stdout, sen.stdout)
	}
	for _, want := range []string{"último conjunto:", "conservados:", "última ejecución:", "0 ejecuciones desde el último éxito"} {
		if !strings.Contains(ses.stdout, want) {
			t.Errorf("Spanish status lacks %q:\n%s", want, ses.stdout)
		}
	}
	capture(t, "status-es.txt", ses.stdout)
	if !strings.Contains(sen.stdout, "newest set:") || !strings.Contains(sen.stdout, "0 runs since the last success") {
		t.Errorf("English status:\n%s", sen.stdout)
	}

	for _, args := range [][]string{{"--help"}, {"--lang", "es", "run", "--help"}} {
		env := es
		if args[0] == "--lang" {
			env = []string{"LANG=C"}
		}
		h := mbk(t, runOpts{env: env}, args...)
		if h.code != 0 || !strings.Contains(h.stdout, "Uso:") || !strings.Contains(h.stdout, "Opciones") {
			t.Errorf("mbk %v is not in Spanish:\n%s", args, h)
		}
		name := "help-es.txt"
		if len(args) > 1 {
			name = "help-es-run.txt"
		}
		capture(t, name, h.stdout)
	}
	if h := mbk(t, runOpts{}, "run", "--help"); !strings.Contains(h.stdout, "Usage:") || !strings.Contains(h.stdout, "run only this pipeline of the file") {
		t.Errorf("mbk run --help without a locale is not English:\n%s", h)
	}
	if bad := mbk(t, runOpts{}, "--lang", "fr", "list", file); bad.code != 2 || !strings.Contains(bad.stderr, `"fr"`) {
		t.Errorf("--lang fr: %s", bad)
	}
}

// mailParts returns a message's decoded subject, text part and HTML part.
func mailParts(t *testing.T, raw []byte) (subject, text, html string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p) // multipart decodes quoted-printable
		switch ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct {
		case "text/plain":
			text = string(b)
		case "text/html":
			html = string(b)
		}
	}
	if text == "" || html == "" {
		t.Fatalf("want a text and an HTML part:\n%s", raw)
	}
	return subject, text, html
}

// capture writes what a test saw to $MBK_CAPTURE_DIR/name, when set, for
// people to read (the Spanish e-mails as sent).
func capture(t *testing.T, name, content string) {
	t.Helper()
	dir := os.Getenv("MBK_CAPTURE_DIR")
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
