package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// moodlePlugins are the version rows of moodleSchema's config_plugins.
var moodlePlugins = map[string]string{
	"mod_forum":         "2024100700",
	"mod_resource":      "2024100700",
	"auth_manual":       "2024100700",
	"enrol_manual":      "2024100700",
	"theme_boost":       "2024100701",
	"logstore_standard": "2024100700",
}

// moodleFile is one row of moodleSchema's files table.
type moodleFile struct {
	hash, component, area, path, name string
	size                              int
}

// moodleFiles are moodleSchema's files rows: two rows share a blob (Moodle
// stores a content once), and directory rows (size 0, "."), whose hash is
// that of no content, reference nothing.
var moodleFiles = []moodleFile{
	{"3f2a4c6e8b0d1f3a5c7e9b1d3f5a7c9e1b3d5f7a", "mod_resource", "content", "/", "Plan.pdf", 120400},
	{"3f2a4c6e8b0d1f3a5c7e9b1d3f5a7c9e1b3d5f7a", "user", "draft", "/", "Plan (copy).pdf", 120400},
	{"0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c", "mod_forum", "attachment", "/sub dir/", "Ñandú\twith tab.txt", 17},
	{"ffeeddccbbaa99887766554433221100ffeeddcc", "course", "overviewfiles", "/", "logo.png", 5120},
	{emptyHash, "mod_resource", "content", "/", ".", 0},
	{emptyHash, "user", "draft", "/", ".", 0},
}

// emptyHash is the SHA-1 of no content, which Moodle gives directories.
const emptyHash = "da39a3ee5e6b4b0d3255bfef95601890afd80709"

// wantRefs are the references moodleFiles make: each hash of a row with
// content, once, labelled with its first row (in id order).
func wantRefs() map[string]string {
	out := map[string]string{}
	for _, f := range moodleFiles {
		if _, ok := out["sha1:"+f.hash]; !ok && f.size > 0 {
			out["sha1:"+f.hash] = strings.ReplaceAll(f.component+"/"+f.area+f.path+f.name, "\t", " ")
		}
	}
	return out
}

// moodleSchema creates a Moodle-shaped database: the tables a backup's
// Moodle facts come from, under prefix, a user table, and one of each
// object a dump carries (the trigger fires on the inserts into user).
func moodleSchema(db, prefix string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE DATABASE %s CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\nUSE %s;\n", quoteIdent(db), quoteIdent(db))
	t := func(name string) string { return quoteIdent(prefix + name) }
	fmt.Fprintf(&b, "CREATE TABLE %s (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(255) NOT NULL, value LONGTEXT NOT NULL, UNIQUE KEY (name)) ENGINE=InnoDB;\n", t("config"))
	fmt.Fprintf(&b, "INSERT INTO %s (name, value) VALUES ('version', '2024100700.00'), ('release', '4.5 (Build: 20241007)'), ('lang', 'es');\n", t("config"))
	fmt.Fprintf(&b, "CREATE TABLE %s (id BIGINT AUTO_INCREMENT PRIMARY KEY, plugin VARCHAR(100) NOT NULL, name VARCHAR(100) NOT NULL, value LONGTEXT NOT NULL, UNIQUE KEY (plugin, name)) ENGINE=InnoDB;\n", t("config_plugins"))
	for _, p := range slices.Sorted(maps.Keys(moodlePlugins)) {
		fmt.Fprintf(&b, "INSERT INTO %s (plugin, name, value) VALUES (%s, 'version', %s), (%s, 'enabled', '1');\n",
			t("config_plugins"), quoteString(p), quoteString(moodlePlugins[p]), quoteString(p))
	}
	fmt.Fprintf(&b, `CREATE TABLE %s (id BIGINT AUTO_INCREMENT PRIMARY KEY, contenthash VARCHAR(40) NOT NULL,
  pathnamehash VARCHAR(40) NOT NULL, contextid BIGINT NOT NULL, component VARCHAR(100) NOT NULL,
  filearea VARCHAR(50) NOT NULL, itemid BIGINT NOT NULL, filepath VARCHAR(255) NOT NULL,
  filename VARCHAR(255) NOT NULL, filesize BIGINT NOT NULL, mimetype VARCHAR(100),
  timecreated BIGINT NOT NULL, timemodified BIGINT NOT NULL, KEY (contenthash), UNIQUE KEY (pathnamehash)) ENGINE=InnoDB;
`, t("files"))
	for i, f := range moodleFiles {
		fmt.Fprintf(&b, "INSERT INTO %s (contenthash, pathnamehash, contextid, component, filearea, itemid, filepath, filename, filesize, timecreated, timemodified) "+
			"VALUES (%s, SHA1(%d), 1, %s, %s, 0, %s, %s, %d, 1700000000, 1700000000);\n",
			t("files"), quoteString(f.hash), i, quoteString(f.component), quoteString(f.area), quoteString(f.path), quoteString(f.name), f.size)
	}
	fmt.Fprintf(&b, "CREATE TABLE %s (id INT AUTO_INCREMENT PRIMARY KEY, username VARCHAR(100)) ENGINE=InnoDB;\n", t("user"))
	fmt.Fprintf(&b, "CREATE TABLE %s (id INT AUTO_INCREMENT PRIMARY KEY, action VARCHAR(100)) ENGINE=InnoDB;\n", t("log"))
	fmt.Fprintf(&b, "CREATE TRIGGER %s AFTER INSERT ON %s FOR EACH ROW INSERT INTO %s (action) VALUES (CONCAT('user ', NEW.id));\n", t("user_ai"), t("user"), t("log"))
	fmt.Fprintf(&b, "INSERT INTO %s (username) VALUES ('admin'), ('jose.nunez'), ('zoe');\n", t("user"))
	fmt.Fprintf(&b, "CREATE VIEW %s AS SELECT id, username FROM %s;\n", t("user_view"), t("user"))
	fmt.Fprintf(&b, "CREATE PROCEDURE %s() SELECT COUNT(*) FROM %s;\n", t("count_users"), t("user"))
	fmt.Fprintf(&b, "CREATE EVENT %s ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DO DELETE FROM %s WHERE id < 0;\n", t("cleanup"), t("log"))
	return b.String()
}

// moodleRows are the row counts of moodleSchema's tables.
func moodleRows(prefix string) map[string]int64 {
	return map[string]int64{
		prefix + "config": 3, prefix + "config_plugins": int64(2 * len(moodlePlugins)),
		prefix + "files": int64(len(moodleFiles)), prefix + "user": 3, prefix + "log": 3,
	}
}

// moodleObjects are moodleSchema's objects as details record them.
func moodleObjects(prefix string) []string {
	return []string{"EVENT " + prefix + "cleanup", "PROCEDURE " + prefix + "count_users", "TRIGGER " + prefix + "user_ai", "VIEW " + prefix + "user_view"}
}

// TestMoodleFacts backs up databases on one server that are, or only look
// like, Moodle's, and reads what the details and the info file say of them.
func TestMoodleFacts(t *testing.T) {
	t.Parallel()
	m := testenv.StartMariaDB(t)
	m.SQL(t, moodleSchema("site_mdl", "mdl_")+moodleSchema("site_m", "m_")+
		moodleSchema("two_sites", "mdl_")+strings.SplitN(moodleSchema("two_sites", "x_"), "\n", 2)[1]+`
CREATE DATABASE plain; USE plain;
CREATE TABLE config (id INT PRIMARY KEY, name VARCHAR(10)); INSERT INTO config VALUES (1, 'version');
CREATE DATABASE lookalike; USE lookalike;
CREATE TABLE wp_config (id INT PRIMARY KEY); CREATE TABLE wp_config_plugins (id INT PRIMARY KEY); CREATE TABLE wp_files (id INT PRIMARY KEY);
INSERT INTO wp_config VALUES (1);
`)
	p := newPlugin(t)
	mdl := "mdl_"
	for _, c := range []struct {
		name, db string
		prefix   *string // moodle_prefix
		want     string  // the prefix recorded; "" for none
	}{
		{"detected mdl_", "site_mdl", nil, "mdl_"},
		{"detected m_", "site_m", nil, "m_"},
		{"two sites: none", "two_sites", nil, ""},
		{"two sites, configured", "two_sites", &mdl, "mdl_"},
		{"configured, missing", "site_m", &mdl, ""},
		{"not Moodle", "plain", nil, ""},
		{"Moodle's names, not its columns", "lookalike", nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			more := map[string]cty.Value{}
			if c.prefix != nil {
				more["moodle_prefix"] = cty.StringVal(*c.prefix)
			}
			res, _ := backup(t, p, dbConfig(t, m.Container, c.db, more), c.db)
			d, ok, err := detailsFrom(res.Details)
			if err != nil || !ok {
				t.Fatalf("details: ok=%v err=%v", ok, err)
			}
			if c.want == "" {
				if d.Moodle != nil || res.Details["moodle"] != nil {
					t.Fatalf("recorded Moodle facts for %s: %+v", c.db, d.Moodle)
				}
				if strings.Contains(res.InfoText, "Moodle") {
					t.Fatalf("the info file speaks of Moodle:\n%s", res.InfoText)
				}
				return
			}
			if d.Moodle == nil {
				t.Fatalf("no Moodle facts recorded; details %v", res.Details)
			}
			want := moodle{Prefix: c.want, Version: "2024100700.00", Release: "4.5 (Build: 20241007)", Plugins: moodlePlugins}
			if d.Moodle.Prefix != want.Prefix || d.Moodle.Version != want.Version || d.Moodle.Release != want.Release || !maps.Equal(d.Moodle.Plugins, want.Plugins) {
				t.Fatalf("Moodle facts %+v, want %+v", *d.Moodle, want)
			}
			if c.prefix == nil && !slices.Equal(d.Objects, moodleObjects(c.want)) {
				t.Errorf("objects %q, want %q", d.Objects, moodleObjects(c.want))
			}
			for _, s := range []string{`4.5 (Build: 20241007) (version 2024100700.00), table prefix "` + c.want + `", 6 plugins`, "plugins and their versions (" + c.want + "config_plugins)", "theme_boost", "2024100701"} {
				if !strings.Contains(res.InfoText, s) {
					t.Errorf("the info file lacks %q:\n%s", s, res.InfoText)
				}
			}
		})
	}
}
