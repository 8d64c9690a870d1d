package menu

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMenuSpanish drives the menu in Spanish (LANG=es_ES.UTF-8) on a
// terminal, as the administrators use it: the menu, a list, a backup, the
// restore confirmation screen (cancelled) and the schedule form, every
// prompt and the commands' own output in Spanish, numbers with a decimal
// comma. With MBK_CAPTURE_DIR set, the screens are written there
// (menu-es.txt, restore-es.txt, schedule-es.txt) as the terminal showed
// them.
func TestMenuSpanish(t *testing.T) {
	s := newMenuSite(t)
	tm := startTerm(t, append([]string{"LANG=es_ES.UTF-8"}, s.crontabEnv...), "menu", s.dir)
	tm.waitFor("respaldos de sitios Moodle · 2 pipelines en " + s.dir)
	tm.waitFor("¿Qué desea hacer?")
	tm.waitFor("0  Salir")
	tm.waitShown("↑/↓ Intro, o escriba un número · Esc volver · Ctrl+C salir")
	menu := tm.shown()
	for _, want := range []string{"› 1  Crear un respaldo", "2  Listar los respaldos", "3  Restaurar un respaldo", "4  Configurar el respaldo automático",
		"5  Ver las tareas programadas", "6  Eliminar una tarea programada", "7  Configurar el correo", "8  Enviar un correo de prueba",
		"9  Ver la información detallada de un respaldo", "0  Salir"} {
		if !strings.Contains(menu, want) {
			t.Errorf("the Spanish menu lacks %q:\n%s", want, menu)
		}
	}
	captureScreen(t, "menu-es.txt", menu)

	// A list of a pipeline with no set: mbk list speaks Spanish too.
	tm.send("2")
	tm.waitFor("Listar los respaldos: ¿qué pipeline?")
	tm.waitFor("0  Volver")
	tm.send("2")
	tm.waitFor("$ mbk list " + s.file["beta"])
	tm.waitFor("no hay conjuntos en " + s.root["beta"])
	backToMenuES(tm)

	// A backup: mbk run's result in Spanish too.
	tm.send("1")
	tm.waitFor("Crear un respaldo: ¿qué pipeline?")
	tm.waitFor("0  Volver")
	tm.send("2")
	tm.waitFor("$ mbk run " + s.file["beta"])
	set := tm.waitMatch(regexp.MustCompile(`beta: conjunto (\S+) guardado en `))[1]
	backToMenuES(tm)

	// The list: Spanish headings and count.
	tm.send("2")
	tm.waitFor("0  Volver")
	tm.send("2")
	tm.waitFor("CONJUNTO")
	tm.waitMatch(regexp.MustCompile(regexp.QuoteMeta(set) + `\s+backup\s+complete\s+\d+,\d KiB`))
	tm.waitFor("1 conjunto")
	backToMenuES(tm)

	// The restore confirmation, cancelled.
	tm.send("3")
	tm.waitFor("Restaurar un respaldo: ¿qué pipeline?")
	tm.waitFor("0  Volver")
	tm.send("2")
	tm.waitFor("¿Qué conjunto de beta?")
	tm.waitShown("› 1  " + set + "  respaldo · completo, ")
	if !regexp.MustCompile(regexp.QuoteMeta(set) + `  respaldo · completo, \d+,\d KiB`).MatchString(tm.shown()) {
		t.Errorf("the set's size is not written with a decimal comma:\n%s", tm.shown())
	}
	tm.send("1")
	tm.waitFor("¿Qué desea restaurar?")
	tm.waitFor("1  La base de datos y los archivos")
	tm.waitFor("0  Volver")
	tm.send("1")
	tm.waitShown("› Escriba el nombre del pipeline (beta) para restaurar")
	tm.waitShown("Restaurar el conjunto " + set + " del pipeline beta sobre el sitio: la base de datos y los archivos.")
	tm.waitShown("Vuelve: lo que contiene el conjunto " + set + ", según su manifiesto:")
	tm.waitShown(`(etapa dump "faulty", plugin faulty): 1,0 MiB`)
	tm.waitShown("Antes se hace una copia de seguridad del sitio; se conserva 7 días (un conjunto de tipo pre-restore en " + s.root["beta"] + ").")
	tm.waitShown("Intro siguiente · Tab/Mayús+Tab mover")
	captureScreen(t, "restore-es.txt", tm.shown())
	tm.send(keyEsc)
	tm.waitFor("No se restauró nada: el sitio está como estaba.")
	backToMenuES(tm)
	if got := sets(t, s.root["beta"]); len(got) != 1 {
		t.Fatalf("a cancelled restore left sets %v", got)
	}

	// The schedule form: a bad value is refused in Spanish; Esc cancels.
	tm.send("4")
	tm.waitFor("Configurar el respaldo automático: ¿qué pipeline?")
	tm.waitFor("0  Volver")
	tm.send("2")
	tm.waitShown("› ¿Cuándo debe ejecutarse beta?")
	tm.waitShown("0 3 * * 0     los domingos a las 03:00")
	tm.send(keyKill + "cada día" + keyEnter)
	tm.waitShown("✗ no es una programación de cron")
	captureScreen(t, "schedule-es.txt", tm.shown())
	tm.send(keyEsc)
	tm.waitFor("Cancelado: no se cambió nada.")
	backToMenuES(tm)

	tm.send("0")
	tm.waitFor("Hasta luego.")
	if code := tm.wait(); code != 0 {
		t.Fatalf("quit: exit %d", code)
	}
	if english := regexp.MustCompile(`What do you want|Press Enter|0  Quit|0  Back|Which set`).FindString(tm.screen()); english != "" {
		t.Errorf("the Spanish menu showed English: %q", english)
	}
}

// TestMenuLangFlag: --lang en gives the English menu whatever the locale.
func TestMenuLangFlag(t *testing.T) {
	s := newMenuSite(t)
	tm := startTerm(t, []string{"LANG=es_ES.UTF-8"}, "--lang", "en", "menu", s.dir)
	tm.waitFor("What do you want to do?")
	tm.waitFor("0  Quit")
	tm.send("0")
	tm.waitFor("Bye.")
	if code := tm.wait(); code != 0 {
		t.Fatalf("quit: exit %d", code)
	}
}

func backToMenuES(tm *term) {
	tm.t.Helper()
	tm.waitFor("Pulse Intro para volver al menú.")
	tm.send(keyEnter)
	tm.waitFor("0  Salir")
}

// captureScreen writes a screen to $MBK_CAPTURE_DIR/name, when set, with
// each run of empty rows (the screen is 50 rows high) written as one.
func captureScreen(t *testing.T, name, screen string) {
	t.Helper()
	screen = regexp.MustCompile(`\n{3,}`).ReplaceAllString(screen, "\n\n")
	dir := os.Getenv("MBK_CAPTURE_DIR")
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(screen+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}
