package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/sdk"
	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// binaryValues are the BLOB contents a dump without --hex-blob must carry
// byte for byte: every byte value, the bytes the dump escapes (NUL, \n, \r,
// \, ', ", ^Z), invalid UTF-8 (lone continuation bytes, overlong forms,
// surrogates, a sequence cut short before a quote or a backslash, which a
// client reading utf8mb4 could take for one character), text that looks
// like SQL or like a client command, and, in bulk, the content Moodle
// stores in binary columns: compressed data (random-looking bytes) and
// gzipped serialized PHP.
func binaryValues() [][]byte {
	var all, rev [256]byte
	for i := range all {
		all[i], rev[255-i] = byte(i), byte(i)
	}
	vals := [][]byte{
		all[:], rev[:],
		[]byte(`'`), []byte(`\`), []byte(`\'`), []byte(`''`), []byte(`\\'`), []byte(`'\`), []byte(`abc\`),
		[]byte("\r\n"), []byte("\n"), []byte("\r"), {0}, {0x1a}, []byte("\"\x00\"\r\n\\\\\x1a"),
		{0xc3, 0x28}, {0xff, 0xfe, 0xfd}, {0x80}, {0xc0, 0xaf}, {0xed, 0xa0, 0x80}, {0xf4, 0x90, 0x80, 0x80}, {0xe2, 0x82},
		{0xc3, '\''}, {0xe3, 0x81, '\''}, {0xf0, 0x9f, '\\'}, {0xc3, '\\', '\''}, {'x', 0xc3},
		[]byte(");\nINSERT INTO `mdl_binary` VALUES (9999, 'x');\n"), []byte("\nDELIMITER ;;\n"),
		[]byte("\\! touch /tmp/pwned\n"), []byte("system touch /tmp/pwned;"), []byte("/* */ -- x\n# y `;"),
		{},
	}
	// Bulk, so the dump holds several INSERT statements for the table and a
	// parallel load splits them over its connections.
	r := rand.New(rand.NewPCG(21, 21))
	for i := range 160 {
		b := make([]byte, 8<<10+r.IntN(24<<10))
		if i%2 == 0 {
			for j := range b {
				b[j] = byte(r.Uint32())
			}
		} else {
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			for k := 0; k < len(b)/40; k++ {
				fmt.Fprintf(zw, `a:3:{s:6:"userid";i:%d;s:4:"name";s:9:"Ñandú 😀";s:4:"data";s:3:"%c'\";}`, r.IntN(1e6), 'a'+r.IntN(26))
			}
			zw.Close()
			b = z.Bytes()
		}
		vals = append(vals, b)
	}
	return vals
}

// TestBinaryRoundTrip proves that binary columns survive a dump without
// --hex-blob and a restore, byte for byte, through the parallel load and
// through a single client, and that a dump made with --hex-blob (the sets
// of mbk before #21) still restores the same.
func TestBinaryRoundTrip(t *testing.T) {
	t.Parallel()
	src := testenv.StartMariaDB(t)
	dst := testenv.StartMariaDB(t)
	vals := binaryValues()
	var sql strings.Builder
	sql.WriteString(`CREATE DATABASE moodle CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE moodle;
CREATE TABLE mdl_binary (id INT PRIMARY KEY, b LONGBLOB NOT NULL, vb VARBINARY(512) NOT NULL, contenthash BINARY(20) NOT NULL,
  t TEXT NOT NULL) ENGINE=InnoDB;
`)
	want := make([]string, len(vals))
	for i, v := range vals {
		vb := v[:min(len(v), 512)]
		h := sha1.Sum(v)
		text := fmt.Sprintf("Ñandú 😀 '%d'\\", i)
		fmt.Fprintf(&sql, "INSERT INTO mdl_binary VALUES (%d, X'%x', X'%x', X'%x', X'%x');\n", i+1, v, vb, h, text)
		s := sha256.Sum256(v)
		want[i] = strings.ToUpper(fmt.Sprintf("%d\t%d\t%x\t%x\t%x\t%x", i+1, len(v), s, vb, h, text))
	}
	src.SQL(t, sql.String())
	p := newPlugin(t)
	query := "SELECT id, LENGTH(b), UPPER(SHA2(b, 256)), HEX(vb), HEX(contenthash), HEX(t) FROM %s.mdl_binary ORDER BY id;"
	check := func(t *testing.T, m *testenv.MariaDB, db string) {
		t.Helper()
		got := strings.Split(strings.TrimRight(m.SQL(t, fmt.Sprintf(query, db)), "\n"), "\n")
		if len(got) != len(want) {
			t.Fatalf("%s: %d rows, want %d", db, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s, row %d differs:\n got %.200s\nwant %.200s", db, i+1, got[i], want[i])
			}
		}
	}
	check(t, src, "moodle") // the source holds what the test meant

	for i, tc := range []struct {
		name  string
		extra []string
		jobs  int64
	}{
		{"raw, parallel load", nil, 2},
		{"raw, one client", nil, 1},
		{"hex-blob (old sets), parallel load", []string{"--hex-blob"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			more := map[string]cty.Value{"restore_jobs": cty.NumberIntVal(tc.jobs)}
			if tc.extra != nil {
				var l []cty.Value
				for _, a := range tc.extra {
					l = append(l, cty.StringVal(a))
				}
				more["extra_args"] = cty.ListVal(l)
			}
			res, dump := backup(t, p, dbConfig(t, src.Container, "moodle", more), "moodle")
			// 00 01 02 ... as the hex-blob form writes it, or raw.
			hexForm := bytes.Contains(dump, []byte("0x"+hex.EncodeToString([]byte{0, 1, 2, 3, 4, 5, 6, 7})))
			if hexForm != (tc.extra != nil) {
				t.Fatalf("hex-blob form in the dump: %v, extra args %v", hexForm, tc.extra)
			}
			if !hexForm && !bytes.Contains(dump, []byte("'\\0\x01\x02\x03\x04\x05\x06\x07\x08\t\\n")) {
				t.Fatal("the dump does not hold the bytes 00-08 raw")
			}
			d, ok, err := detailsFrom(res.Details)
			if err != nil || !ok || d.Rows["mdl_binary"] != int64(len(vals)) {
				t.Fatalf("the dump's scan counted %v rows (ok %v, err %v), want %d", d.Rows, ok, err, len(vals))
			}
			if n := bytes.Count(dump, []byte("INSERT INTO `mdl_binary`")); n < 3 {
				t.Fatalf("the dump holds %d INSERT statements for mdl_binary: too few to split", n)
			}
			target := fmt.Sprintf("copy%d", i)
			rcfg := dbConfig(t, dst.Container, "moodle", map[string]cty.Value{"restore_jobs": cty.NumberIntVal(tc.jobs)})
			rr, err := p.Restore(testContext(t), sdk.RestoreRequest{Config: rcfg, Artifact: "moodle",
				Options: ropts(t, map[string]string{optTarget: target}), Details: res.Details}, bytes.NewReader(dump))
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			if !strings.Contains(rr.Summary, fmt.Sprintf("%d rows", len(vals))) {
				t.Errorf("summary %q", rr.Summary)
			}
			check(t, dst, target)
		})
	}
}
