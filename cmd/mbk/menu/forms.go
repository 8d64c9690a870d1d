package menu

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/schedule"
)

func (m *Menu) validCron(s string) error {
	s = strings.TrimSpace(s)
	if s == "" {
		return errors.New(m.tr.T("enter a schedule, e.g. 0 2 * * *"))
	}
	// What `mbk cron install` accepts: cron(8)'s five fields or a
	// descriptor such as @daily.
	if _, err := schedule.ParseCrontabSchedule(s); err != nil {
		return errors.New(m.tr.T("not a cron schedule: %v", err))
	}
	return nil
}

// schedule is the seed's "configure automatic backup": a crontab entry
// that runs the pipeline, written by `mbk cron install`.
func (m *Menu) schedule(ctx context.Context, p *config.Pipeline) error {
	expr := p.Schedule
	if expr == "" {
		expr = "0 2 * * *"
	}
	desc := m.tr.T("minute hour day-of-month month day-of-week, e.g.\n" +
		"0 2 * * *     every day at 02:00\n" +
		"0 3 * * 0     Sundays at 03:00\n" +
		"0 */6 * * *   every six hours\n" +
		"0 2,14 * * *  at 02:00 and 14:00")
	ok, err := m.ui.form(ctx, m.tr.T("Configure a schedule: pipeline %s of %s", p.Name, p.File.Path), []field{
		{title: m.tr.T("When should %s run?", p.Name), desc: desc, value: &expr, validate: m.validCron},
	})
	if err != nil || !ok {
		return err
	}
	m.mbk(ctx, append(append([]string{"cron", "install"}, m.cronArgs(p)...), "--schedule", strings.TrimSpace(expr))...)
	return nil
}

// smtpKeys are the seed's .env names, in the order the form asks for them.
var smtpKeys = []string{"SMTP_SERVER", "SMTP_PORT", "SMTP_USER", "SMTP_PASSWORD", "SMTP_FROM_NAME", "BACKUP_EMAIL_TO"}

// configureEmail edits the e-mail keys of the env_file the pipeline reads.
func (m *Menu) configureEmail(ctx context.Context, p *config.Pipeline) error {
	if p.File.EnvFile == "" {
		fmt.Print("\n" + m.tr.T("%s reads no env_file: the e-mail settings of pipeline %s are written in that file itself,\n"+
			"in its stage \"notify\" block (host, port, username, password, from, to). To keep them apart, as the\n"+
			"old .env did, add  env_file = \"/etc/mbk/moodle.env\"  and read them with env(\"SMTP_SERVER\") and so on,\n"+
			"as pipelines/testing.hcl does.\n", p.File.Path, p.Name))
		return nil
	}
	envPath := p.File.EnvFile
	if !filepath.IsAbs(envPath) {
		envPath = filepath.Join(filepath.Dir(p.File.Path), envPath)
	}
	fmt.Print("\n" + m.tr.T("The e-mail settings of pipeline %s live in %s (the env_file of %s):\n"+
		"SMTP_SERVER, SMTP_PORT, SMTP_USER, SMTP_PASSWORD, SMTP_FROM_NAME and BACKUP_EMAIL_TO (comma-separated).\n"+
		"The pipeline reads them with env(\"...\"); a variable exported in the shell wins over the file.\n",
		p.Name, envPath, p.File.Path))
	heading := m.tr.T("Configure e-mail: pipeline %s, settings in %s", p.Name, envPath)
	if src, err := os.ReadFile(p.File.Path); err == nil && !strings.Contains(string(src), "SMTP_") {
		note := m.tr.T("Note: %s does not mention SMTP_*: its notify stage does not read these keys yet.", p.File.Path)
		fmt.Println(note)
		heading += "\n" + note // the form hides what was printed
	}
	cur, err := readEnvFile(envPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mbk: "+m.tr.T("%s cannot be read as an env file (%v): fix it by hand first", envPath, err))
		return nil
	}
	vals := map[string]string{}
	for _, k := range smtpKeys {
		vals[k] = cur[k]
	}
	if vals["SMTP_PORT"] == "" {
		vals["SMTP_PORT"] = "465"
	}
	password := ""
	pwDesc := m.tr.T("Typed characters are masked.")
	if cur["SMTP_PASSWORD"] != "" {
		pwDesc = m.tr.T("Set already: leave empty to keep it. Typed characters are masked.")
	}
	server, port, user, from, to := vals["SMTP_SERVER"], vals["SMTP_PORT"], vals["SMTP_USER"], vals["SMTP_FROM_NAME"], vals["BACKUP_EMAIL_TO"]
	ok, err := m.ui.form(ctx, heading, []field{
		{title: "SMTP_SERVER", desc: m.tr.T("The mail server, e.g. smtp.gmail.com"), value: &server, validate: m.validHost},
		{title: "SMTP_PORT", desc: m.tr.T("465 implicit TLS, 587 STARTTLS, 25 a local relay"), value: &port, validate: m.validPort},
		{title: "SMTP_USER", desc: m.tr.T("The login (empty for a relay without login)"), value: &user, validate: m.oneLine},
		{title: "SMTP_PASSWORD", desc: pwDesc, value: &password, validate: m.oneLine, masked: true},
		{title: "SMTP_FROM_NAME", desc: m.tr.T("The sender's name, e.g. Moodle Backup System"), value: &from, validate: m.oneLine},
		{title: "BACKUP_EMAIL_TO", desc: m.tr.T("Who gets the reports, comma-separated"), value: &to, validate: m.validRecipients},
	})
	if err != nil || !ok {
		return err
	}
	save, err := m.ui.choose(ctx, "", m.tr.T("Write these settings to %s?", envPath), []choice{
		{key: "1", label: m.tr.T("Write")},
		{key: "0", label: m.tr.T("Cancel")},
	})
	if err != nil {
		return err
	}
	if save != "1" {
		fmt.Println(m.tr.T("Nothing was written."))
		return nil
	}
	vals = map[string]string{
		"SMTP_SERVER": strings.TrimSpace(server), "SMTP_PORT": strings.TrimSpace(port), "SMTP_USER": strings.TrimSpace(user),
		"SMTP_FROM_NAME": strings.TrimSpace(from), "BACKUP_EMAIL_TO": normalizeRecipients(to),
	}
	if password != "" {
		vals["SMTP_PASSWORD"] = password
	}
	if err := writeEnvFile(envPath, vals, smtpKeys); err != nil {
		fmt.Fprintf(os.Stderr, "mbk: %v\n", err)
		return nil
	}
	fmt.Println(m.tr.T("Saved to %s (mode 0600). Option 8 sends a test e-mail with these settings.", envPath))
	return nil
}

func (m *Menu) oneLine(s string) error {
	if strings.ContainsAny(s, "\r\n\x00") {
		return errors.New(m.tr.T("one line only"))
	}
	return nil
}

func (m *Menu) validHost(s string) error {
	s = strings.TrimSpace(s)
	if s == "" || strings.ContainsAny(s, " \t/:@") {
		return errors.New(m.tr.T("a host name such as smtp.gmail.com"))
	}
	return nil
}

func (m *Menu) validPort(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > 65535 {
		return errors.New(m.tr.T("a port number from 1 to 65535"))
	}
	return nil
}

func (m *Menu) validRecipients(s string) error {
	var n int
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if _, err := mail.ParseAddress(a); err != nil {
			return errors.New(m.tr.T("%q is not an e-mail address", a))
		}
		n++
	}
	if n == 0 {
		return errors.New(m.tr.T("at least one address, e.g. admin@example.com"))
	}
	return nil
}

func normalizeRecipients(s string) string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return strings.Join(out, ",")
}
