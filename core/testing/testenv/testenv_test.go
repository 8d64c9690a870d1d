package testenv

import (
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	if got, want := QuoteString(`p$ ss'"\;#ñ`), `'p$ ss\'"\\;#ñ'`; got != want {
		t.Errorf("QuoteString = %s, want %s", got, want)
	}
	if got, want := QuoteIdent("a`b"), "`a``b`"; got != want {
		t.Errorf("QuoteIdent = %s, want %s", got, want)
	}
}

func TestUniqueName(t *testing.T) {
	a, b := UniqueName(t, "mbktest-x"), UniqueName(t, "mbktest-x")
	if a == b || !strings.HasPrefix(a, "mbktest-x-") {
		t.Fatalf("UniqueName gave %q and %q", a, b)
	}
}

func TestMariaDBUserLogin(t *testing.T) {
	t.Parallel()
	db := StartMariaDB(t)

	const password = `p$ ss'"\;#ñ`
	db.CreateUser(t, "moodle", "moodleuser", password)

	// Password only in the exec's environment, never on a command line.
	out, stderr, code := ExecEnv(t, db.Container, []string{"MYSQL_PWD=" + password}, nil,
		"mariadb", "-umoodleuser", "--batch", "--skip-column-names", "-e", "select current_user()")
	if code != 0 {
		t.Fatalf("login as moodleuser failed (exit %d): %s", code, stderr)
	}
	if got := strings.TrimSpace(out); got != "moodleuser@localhost" {
		t.Fatalf("current_user() = %q, want moodleuser@localhost", got)
	}

	// A wrong password is refused, so the check above is meaningful.
	_, _, code = ExecEnv(t, db.Container, []string{"MYSQL_PWD=wrong"}, nil,
		"mariadb", "-umoodleuser", "-e", "select 1")
	if code == 0 {
		t.Fatal("login with a wrong password succeeded")
	}

	// Database charset/collation and a utf8mb4 round trip through SQL().
	got := strings.TrimSpace(db.SQL(t, "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "+
		"FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='moodle';"))
	if got != "utf8mb4\tutf8mb4_unicode_ci" {
		t.Fatalf("moodle charset = %q", got)
	}
	db.SQL(t, "CREATE TABLE moodle.t (s VARCHAR(50)) DEFAULT CHARSET=utf8mb4; INSERT INTO moodle.t VALUES ('ñ 😀 日本');")
	if got := strings.TrimSpace(db.SQL(t, "SELECT s FROM moodle.t;")); got != "ñ 😀 日本" {
		t.Fatalf("utf8mb4 round trip = %q", got)
	}

	// The dump tool works inside the container and writes its trailer.
	out, stderr, code = Exec(t, db.Container, nil, "mariadb-dump", "-uroot", "--single-transaction", "moodle")
	if code != 0 || !strings.Contains(out, "-- Dump completed") {
		t.Fatalf("mariadb-dump exit %d, stderr %s", code, stderr)
	}
}

func TestVolumeApp(t *testing.T) {
	t.Parallel()
	vol := UniqueName(t, "mbktest-vol")
	CreateVolume(t, vol)
	app := StartApp(t, vol, "/var/www/moodledata")

	const content = "hola ñandú 😀\n"
	_, stderr, code := Exec(t, app, strings.NewReader(content), "sh", "-c", "cat >/var/www/moodledata/hello.txt")
	if code != 0 {
		t.Fatalf("write failed (exit %d): %s", code, stderr)
	}
	out, stderr, code := Exec(t, app, nil, "cat", "/var/www/moodledata/hello.txt")
	if code != 0 || out != content {
		t.Fatalf("read back %q (exit %d, stderr %s), want %q", out, code, stderr, content)
	}

	// Exit codes and stderr are reported, not turned into test failures.
	_, stderr, code = Exec(t, app, nil, "sh", "-c", "echo oops >&2; exit 3")
	if code != 3 || strings.TrimSpace(stderr) != "oops" {
		t.Fatalf("exit = %d, stderr = %q; want 3, oops", code, stderr)
	}

	// The data survives the container: a second app sees the same volume.
	app2 := StartApp(t, vol, "/data")
	if out, _, _ := Exec(t, app2, nil, "cat", "/data/hello.txt"); out != content {
		t.Fatalf("second container read %q", out)
	}
}
