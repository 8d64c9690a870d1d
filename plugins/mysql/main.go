// Command mbk-plugin-mysql is mbk's "dump" stage for MySQL and MariaDB: it runs
// mariadb-dump or mysqldump inside the database container through the Docker
// exec API, or on mbk's machine against a server reached over TCP, streams
// the SQL to the core, and restores it the same way (settings.go says how).
package main

import (
	"github.com/hashicorp/go-hclog"

	"github.com/mbk-backup/mbk/core/sdk"
)

const version = "0.1.0"

func main() {
	sdk.Main("mysql", func(log hclog.Logger) sdk.Plugin { return &plugin{log: log} })
}

type plugin struct {
	log hclog.Logger
}

var (
	_ sdk.Plugin      = (*plugin)(nil)
	_ sdk.Source      = (*plugin)(nil)
	_ sdk.Validator   = (*plugin)(nil)
	_ sdk.Preflighter = (*plugin)(nil)
)

func (p *plugin) Describe() sdk.Info {
	return sdk.Info{
		Name:        "mysql",
		Version:     version,
		Kinds:       []string{sdk.KindDump},
		Description: "Dumps MySQL/MariaDB databases with mariadb-dump or mysqldump, run inside their container or against host:port over TCP, and restores them; for drills it makes a sandbox server like the source's and checks a restored database against the backup (rows, objects, Moodle's version and plugins, the files it references).",
	}
}
