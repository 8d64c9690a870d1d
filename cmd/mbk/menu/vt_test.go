package menu

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// vt is as much of a terminal as the menu's tests need to know what is on
// the screen: text, line feeds, cursor moves, erasing, the alternate
// screen. Colours and other modes are read and ignored.
type vt struct {
	rows, cols int
	cells      [][]rune
	row, col   int
	wrap       bool // autowrap (DECAWM)
	saved      *vt  // the normal screen while the alternate one shows
	savedRow   int
	savedCol   int
}

func newVT(rows, cols int) *vt {
	v := &vt{rows: rows, cols: cols, wrap: true}
	v.erase(0, 0, rows, cols)
	return v
}

func (v *vt) erase(r0, c0, r1, c1 int) {
	if v.cells == nil {
		v.cells = make([][]rune, v.rows)
		for r := range v.cells {
			v.cells[r] = make([]rune, v.cols)
		}
	}
	for r := max(r0, 0); r < min(r1, v.rows); r++ {
		for c := max(c0, 0); c < min(c1, v.cols); c++ {
			v.cells[r][c] = ' '
		}
	}
}

func (v *vt) lineFeed() {
	v.row++
	if v.row >= v.rows {
		copy(v.cells, v.cells[1:])
		v.cells[v.rows-1] = make([]rune, v.cols)
		v.erase(v.rows-1, 0, v.rows, v.cols)
		v.row = v.rows - 1
	}
}

func (v *vt) put(r rune) {
	if v.col >= v.cols {
		if !v.wrap {
			v.col = v.cols - 1
		} else {
			v.col = 0
			v.lineFeed()
		}
	}
	v.cells[v.row][v.col] = r
	v.col++
}

func (v *vt) clamp() {
	v.row = min(max(v.row, 0), v.rows-1)
	v.col = min(max(v.col, 0), v.cols-1)
}

// feed takes what it can of b and returns how many bytes it took: an
// escape sequence or a character cut at the end waits for the rest.
func (v *vt) feed(b []byte) int {
	p := 0
	for p < len(b) {
		c := b[p]
		switch {
		case c == 0x1b:
			n := escLen(b[p:])
			if n == 0 {
				return p
			}
			if b[p+1] == '[' {
				v.csi(string(b[p+2:p+n-1]), b[p+n-1])
			}
			p += n
			continue
		case c == '\r':
			v.col = 0
		case c == '\n':
			v.lineFeed()
		case c == '\b':
			v.col = max(v.col-1, 0)
		case c == '\t':
			v.col = min((v.col/8+1)*8, v.cols-1)
		case c < 0x20 || c == 0x7f:
		default:
			if !utf8.FullRune(b[p:]) {
				return p
			}
			r, n := utf8.DecodeRune(b[p:])
			v.put(r)
			p += n
			continue
		}
		p++
	}
	return p
}

// escLen is the length of the escape sequence b starts with, 0 when it is
// not complete yet.
func escLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '[':
		for i := 2; i < len(b); i++ {
			if b[i] >= 0x40 && b[i] <= 0x7e {
				return i + 1
			}
		}
		return 0
	case ']', 'P', '_', '^': // strings, ended by BEL or ST
		for i := 2; i < len(b); i++ {
			if b[i] == 0x07 {
				return i + 1
			}
			if b[i] == 0x1b && i+1 < len(b) && b[i+1] == '\\' {
				return i + 2
			}
		}
		return 0
	case '(', ')', '*', '+', '#', ' ':
		if len(b) < 3 {
			return 0
		}
		return 3
	}
	return 2
}

func (v *vt) csi(params string, final byte) {
	private := strings.HasPrefix(params, "?")
	var n []int
	for _, f := range strings.Split(strings.TrimLeft(params, "?<>="), ";") {
		i, _ := strconv.Atoi(f)
		n = append(n, i)
	}
	arg := func(i, def int) int {
		if i < len(n) && n[i] != 0 {
			return n[i]
		}
		return def
	}
	switch final {
	case 'H', 'f':
		v.row, v.col = arg(0, 1)-1, arg(1, 1)-1
		v.clamp()
	case 'A':
		v.row -= arg(0, 1)
		v.clamp()
	case 'B':
		v.row += arg(0, 1)
		v.clamp()
	case 'C':
		v.col += arg(0, 1)
		v.clamp()
	case 'D':
		v.col -= arg(0, 1)
		v.clamp()
	case 'G':
		v.col = arg(0, 1) - 1
		v.clamp()
	case 'd':
		v.row = arg(0, 1) - 1
		v.clamp()
	case 'J':
		switch arg(0, 0) {
		case 0:
			v.erase(v.row, v.col, v.row+1, v.cols)
			v.erase(v.row+1, 0, v.rows, v.cols)
		case 1:
			v.erase(0, 0, v.row, v.cols)
			v.erase(v.row, 0, v.row+1, v.col+1)
		default:
			v.erase(0, 0, v.rows, v.cols)
		}
	case 'K':
		switch arg(0, 0) {
		case 0:
			v.erase(v.row, v.col, v.row+1, v.cols)
		case 1:
			v.erase(v.row, 0, v.row+1, v.col+1)
		default:
			v.erase(v.row, 0, v.row+1, v.cols)
		}
	case 'h', 'l':
		if !private {
			return
		}
		on := final == 'h'
		for _, mode := range n {
			switch mode {
			case 7:
				v.wrap = on
			case 47, 1047, 1049:
				v.alternate(on)
			}
		}
	}
}

// alternate switches to the alternate screen (a blank one) and back to the
// normal screen as it was.
func (v *vt) alternate(on bool) {
	switch {
	case on && v.saved == nil:
		normal := *v
		normal.cells = v.cells
		v.saved, v.savedRow, v.savedCol = &normal, v.row, v.col
		v.cells = nil
		v.erase(0, 0, v.rows, v.cols)
	case !on && v.saved != nil:
		v.cells, v.row, v.col = v.saved.cells, v.savedRow, v.savedCol
		v.saved = nil
	}
}

// String is the screen, its rows without trailing blanks.
func (v *vt) String() string {
	var b strings.Builder
	for _, r := range v.cells {
		b.WriteString(strings.TrimRight(string(r), " "))
		b.WriteByte('\n')
	}
	return strings.TrimRight(b.String(), "\n")
}

var (
	cursorMove = regexp.MustCompile(`\x1b\[[0-9;]*[Hf]`)
	escapeSeq  = regexp.MustCompile(`\x1b(?:\[[0-?]*[ -/]*[@-~]|[\]P_^][^\x07\x1b]*(?:\x07|\x1b\\)|[()*+# ].|.)`)
)

// plain is what was written without escape sequences and carriage
// returns; a cursor move starts a line.
func plain(raw []byte) string {
	s := cursorMove.ReplaceAllString(string(raw), "\n")
	return strings.ReplaceAll(escapeSeq.ReplaceAllString(s, ""), "\r", "")
}

func TestMenuTestTerminal(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"text and lines", "ab\r\ncd", "ab\ncd"},
		{"cursor moves and overwrites", "hello\x1b[1;1HJ\x1b[2;3Hx", "Jello\n  x"},
		{"erase line", "abcdef\x1b[1;3H\x1b[K", "ab"},
		{"colours are ignored", "\x1b[1;35m› 2\x1b[0m  List", "› 2  List"},
		{"alternate screen comes back", "before\x1b[?1049h\x1b[H\x1b[2Jdrawn\x1b[?1049l after", "before after"},
		{"strings are skipped", "a\x1b]11;?\x1b\\b\x1b]2;title\x07c", "abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVT(3, 20)
			raw := []byte(tc.in)
			// Fed in two pieces cut anywhere, as reads from a pty come.
			for cut := range len(raw) + 1 {
				v = newVT(3, 20)
				took := v.feed(raw[:cut])
				took += v.feed(raw[took:])
				if took != len(raw) {
					t.Fatalf("cut at %d: took %d of %d bytes", cut, took, len(raw))
				}
				if got := v.String(); got != tc.want {
					t.Fatalf("cut at %d: screen\n%q\nwant\n%q", cut, got, tc.want)
				}
			}
		})
	}
	if got := plain([]byte("\x1b[?1049h\x1b[1;1Hrow one\x1b[2;1H\x1b[1mrow two\x1b[0m\r\n")); got != "\nrow one\nrow two\n" {
		t.Fatalf("plain: %q", got)
	}
}
