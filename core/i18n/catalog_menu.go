package i18n

// The interactive menu (cmd/mbk/menu): its options, prompts, forms and the
// restore confirmation screen.
var _ = add(map[string]string{
	// The menu.
	"What do you want to do?": "¿Qué desea hacer?",
	"Create a backup":         "Crear un respaldo",
	"List backups":            "Listar los respaldos",
	"Restore a backup":        "Restaurar un respaldo",
	"Configure a schedule":    "Configurar el respaldo automático",
	"Show schedules":          "Ver las tareas programadas",
	"Remove a schedule":       "Eliminar una tarea programada",
	"Configure e-mail":        "Configurar el correo",
	"Send a test e-mail":      "Enviar un correo de prueba",
	"Show a backup's details": "Ver la información detallada de un respaldo",
	"Quit":                    "Salir",
	"Back":                    "Volver",
	"Bye.":                    "Hasta luego.",
	"%[1]s cannot be loaded (run: mbk validate %[1]s)":                                "%[1]s no se puede cargar (ejecute: mbk validate %[1]s)",
	"not valid: run mbk validate %s":                                                  "no es válido: ejecute mbk validate %s",
	"No pipeline found in %s: pass pipeline files or directories (mbk menu PATH...).": "No hay ningún pipeline en %s: indique archivos o carpetas de pipelines (mbk menu RUTA...).",
	"%s · sets in %s":     "%s · conjuntos en %s",
	"%s: which pipeline?": "%s: ¿qué pipeline?",
	"(exit code %v)":      "(código de salida %v)",
	"… %d more above":     "… %d más arriba",
	"… %d more below":     "… %d más abajo",
	"↑/↓ Enter, or type a number · Esc back · Ctrl+C leave": "↑/↓ Intro, o escriba un número · Esc volver · Ctrl+C salir",
	"Press Enter to go back to the menu.":                   "Pulse Intro para volver al menú.",

	// Forms.
	"Enter next · Tab/Shift+Tab move · Ctrl+U clear · Esc cancel · Ctrl+C cancel": "Intro siguiente · Tab/Mayús+Tab mover · Ctrl+U borrar · Esc cancelar · Ctrl+C cancelar",
	"Cancelled: nothing was changed.":                                             "Cancelado: no se cambió nada.",
	"(left empty)":                                                                "(vacío)",
	"(typed, not shown)":                                                          "(escrito, no se muestra)",

	// The schedule.
	"enter a schedule, e.g. 0 2 * * *": "escriba una programación, p. ej. 0 2 * * *",
	"not a cron schedule: %v":          "no es una programación de cron: %v",
	"minute hour day-of-month month day-of-week, e.g.\n" +
		"0 2 * * *     every day at 02:00\n" +
		"0 3 * * 0     Sundays at 03:00\n" +
		"0 */6 * * *   every six hours\n" +
		"0 2,14 * * *  at 02:00 and 14:00": "minuto hora día-del-mes mes día-de-la-semana, p. ej.\n" +
		"0 2 * * *     todos los días a las 02:00\n" +
		"0 3 * * 0     los domingos a las 03:00\n" +
		"0 */6 * * *   cada seis horas\n" +
		"0 2,14 * * *  a las 02:00 y a las 14:00",
	"Configure a schedule: pipeline %s of %s": "Configurar el respaldo automático: pipeline %s de %s",
	"When should %s run?":                     "¿Cuándo debe ejecutarse %s?",

	// E-mail settings.
	"%s reads no env_file: the e-mail settings of pipeline %s are written in that file itself,\n" +
		"in its stage \"notify\" block (host, port, username, password, from, to). To keep them apart, as the\n" +
		"old .env did, add  env_file = \"/etc/mbk/moodle.env\"  and read them with env(\"SMTP_SERVER\") and so on,\n" +
		"as pipelines/testing.hcl does.\n": "%s no lee ningún env_file: la configuración de correo del pipeline %s está escrita en ese mismo archivo,\n" +
		"en su bloque stage \"notify\" (host, port, username, password, from, to). Para tenerla aparte, como el\n" +
		".env de antes, añada  env_file = \"/etc/mbk/moodle.env\"  y léala con env(\"SMTP_SERVER\"), etc.,\n" +
		"como hace pipelines/testing.hcl.\n",
	"The e-mail settings of pipeline %s live in %s (the env_file of %s):\n" +
		"SMTP_SERVER, SMTP_PORT, SMTP_USER, SMTP_PASSWORD, SMTP_FROM_NAME and BACKUP_EMAIL_TO (comma-separated).\n" +
		"The pipeline reads them with env(\"...\"); a variable exported in the shell wins over the file.\n": "La configuración de correo del pipeline %s está en %s (el env_file de %s):\n" +
		"SMTP_SERVER, SMTP_PORT, SMTP_USER, SMTP_PASSWORD, SMTP_FROM_NAME y BACKUP_EMAIL_TO (separados por comas).\n" +
		"El pipeline las lee con env(\"...\"); una variable exportada en la shell tiene prioridad sobre el archivo.\n",
	"Configure e-mail: pipeline %s, settings in %s":                                    "Configurar el correo: pipeline %s, configuración en %s",
	"Note: %s does not mention SMTP_*: its notify stage does not read these keys yet.": "Nota: %s no menciona SMTP_*: su etapa notify todavía no lee estas claves.",
	"%s cannot be read as an env file (%v): fix it by hand first":                      "%s no se puede leer como archivo env (%v): corríjalo a mano primero",
	"Typed characters are masked.":                                                     "Los caracteres escritos se ocultan.",
	"Set already: leave empty to keep it. Typed characters are masked.":                "Ya configurada: déjela vacía para conservarla. Los caracteres escritos se ocultan.",
	"The mail server, e.g. smtp.gmail.com":                                             "El servidor de correo, p. ej. smtp.gmail.com",
	"465 implicit TLS, 587 STARTTLS, 25 a local relay":                                 "465 TLS implícito, 587 STARTTLS, 25 un relé local",
	"The login (empty for a relay without login)":                                      "El usuario (vacío para un relé sin autenticación)",
	"The sender's name, e.g. Moodle Backup System":                                     "El nombre del remitente, p. ej. Moodle Backup System",
	"Who gets the reports, comma-separated":                                            "Quién recibe los informes, separados por comas",
	"Write these settings to %s?":                                                      "¿Guardar esta configuración en %s?",
	"Write":                                                                            "Guardar",
	"Cancel":                                                                           "Cancelar",
	"Nothing was written.":                                                             "No se guardó nada.",
	"Saved to %s (mode 0600). Option 8 sends a test e-mail with these settings.":       "Guardado en %s (modo 0600). La opción 8 envía un correo de prueba con esta configuración.",
	"one line only":                                                                    "una sola línea",
	"a host name such as smtp.gmail.com":                                               "un nombre de servidor como smtp.gmail.com",
	"a port number from 1 to 65535":                                                    "un número de puerto de 1 a 65535",
	"%q is not an e-mail address":                                                      "%q no es una dirección de correo",
	"at least one address, e.g. admin@example.com":                                     "al menos una dirección, p. ej. admin@example.com",

	// Choosing a set, and the restore.
	"Cannot list the sets of %s: %v":         "No se pueden listar los conjuntos de %s: %v",
	"Pipeline %s has no set in %s.":          "El pipeline %s no tiene ningún conjunto en %s.",
	"Pipeline %s has no complete set in %s.": "El pipeline %s no tiene ningún conjunto completo en %s.",
	"complete, %s":                           "completo, %s",
	"incomplete, %s (%s)":                    "incompleto, %s (%s)",
	"backup · %s":                            "respaldo · %s",
	"SAFETY COPY (pre-restore): the site before set %s was restored · %s": "COPIA DE SEGURIDAD (pre-restore): el sitio antes de restaurar el conjunto %s · %s",
	"FUTURE: dated %s ahead of this machine's clock · %s":                 "FUTURO: fechado %s por delante del reloj de esta máquina · %s",
	"Which set of %s?":                         "¿Qué conjunto de %s?",
	"Restore what?":                            "¿Qué desea restaurar?",
	"The database and the files":               "La base de datos y los archivos",
	"Only the database":                        "Solo la base de datos",
	"Only the files":                           "Solo los archivos",
	"Type the pipeline's name (%s) to restore": "Escriba el nombre del pipeline (%s) para restaurar",
	"Enter restores: the menu runs  mbk %s\nEsc cancels: nothing is restored.":                 "Intro restaura: el menú ejecuta  mbk %s\nEsc cancela: no se restaura nada.",
	"type the pipeline's name, %s, exactly to restore; Esc cancels":                            "escriba exactamente el nombre del pipeline, %s, para restaurar; Esc cancela",
	"Nothing was restored: the site is as it was.":                                             "No se restauró nada: el sitio está como estaba.",
	"The restore did not complete: what mbk said above is what happened and how to settle it.": "La restauración no terminó: lo que mbk dijo arriba es lo que pasó y cómo resolverlo.",
	"the database and the files":                                                               "la base de datos y los archivos",
	"only the database":                                                                        "solo la base de datos",
	"only the files":                                                                           "solo los archivos",
	"Restore set %s of pipeline %s over the site: %s.":                                         "Restaurar el conjunto %s del pipeline %s sobre el sitio: %s.",
	"a backup": "un respaldo",
	"a safety copy (pre-restore): the site before set %s was restored":                      "una copia de seguridad (pre-restore): el sitio antes de restaurar el conjunto %s",
	"The set was taken %s (%s).":                                                            "El conjunto se hizo el %s (%s).",
	"Replaced: the site as it is now. No backup of it describes it: its size is not known.": "Se reemplaza: el sitio tal como está ahora. Ningún respaldo lo describe: no se sabe su tamaño.",
	"Replaced: the site as it is now, as the newest backup's manifest describes it (set %s,\ntaken %s; what changed since then is replaced too):": "Se reemplaza: el sitio tal como está ahora, según el manifiesto del respaldo más reciente (conjunto %s,\nhecho el %s; lo que cambió desde entonces también se reemplaza):",
	"%s: not in that backup": "%s: no está en ese respaldo",
	"  Since that backup, set %s was restored over the site (%s):\n  the site may hold that set instead.":                                    "  Después de ese respaldo se restauró el conjunto %s sobre el sitio (%s):\n  puede que el sitio contenga ese conjunto.",
	"Comes back: what set %s holds, as its manifest describes it:":                                                                           "Vuelve: lo que contiene el conjunto %s, según su manifiesto:",
	"A restore of set %s is unfinished: the site may hold part of it, and a copy of that is worth\nnothing, so no new safety copy is taken.": "Una restauración del conjunto %s quedó sin terminar: puede que el sitio contenga una parte, y una copia\nde eso no sirve, así que no se hace una nueva copia de seguridad.",
	"Set %s, taken before that restore, keeps the site as it was.":                                                                           "El conjunto %s, hecho antes de esa restauración, guarda el sitio como estaba.",
	"A safety copy of the site is taken first; it is kept %d days (a set of kind pre-restore in %s).":                                        "Antes se hace una copia de seguridad del sitio; se conserva %d días (un conjunto de tipo pre-restore en %s).",
	"The site is in maintenance mode, closed to its users, until the restore ends.":                                                          "El sitio queda en modo mantenimiento, cerrado a sus usuarios, hasta que termine la restauración.",
	"If the restore fails, mbk says how to put the site back.":                                                                               "Si la restauración falla, mbk dice cómo volver a dejar el sitio como estaba.",
	"%s of data":                                 "%s de datos",
	"Database %s: %s":                            "Base de datos %s: %s",
	"%s (stage %s %q, plugin %s): %s":            "%s (etapa %s %q, plugin %s): %s",
	"in the future (check this machine's clock)": "en el futuro (compruebe el reloj de esta máquina)",
	"less than a minute ago":                     "hace menos de un minuto",
	"%d min ago":                                 "hace %d min",
	"%d h %d min ago":                            "hace %d h %d min",
	"%d h ago":                                   "hace %d h",
})

var _ = addPlurals(map[string]pluralMsg{
	"mbk %s · backups of Moodle sites · %d pipeline(s) in %s": {
		en: forms{2, "mbk %s · backups of Moodle sites · %d pipeline in %s", "mbk %s · backups of Moodle sites · %d pipelines in %s"},
		es: forms{2, "mbk %s · respaldos de sitios Moodle · %d pipeline en %s", "mbk %s · respaldos de sitios Moodle · %d pipelines en %s"},
	},
	"in %d tables":        {en: forms{1, "in %d table", "in %d tables"}, es: forms{1, "en %d tabla", "en %d tablas"}},
	"%d rows":             {en: forms{1, "%d row", "%d rows"}, es: forms{1, "%d fila", "%d filas"}},
	"Files: %d files, %s": {en: forms{1, "Files: %d file, %s", "Files: %d files, %s"}, es: forms{1, "Archivos: %d archivo, %s", "Archivos: %d archivos, %s"}},
	"%d day(s) ago":       {en: forms{1, "%d day ago", "%d days ago"}, es: forms{1, "hace %d día", "hace %d días"}},
	"%d day(s) %d h ago":  {en: forms{1, "%d day %d h ago", "%d days %d h ago"}, es: forms{1, "hace %d día y %d h", "hace %d días y %d h"}},
})
