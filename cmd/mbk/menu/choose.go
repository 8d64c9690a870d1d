package menu

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/mbk-backup/mbk/core/i18n"
)

// errLeave is returned when the person asks to leave the menu (Ctrl+C or
// the terminal went away) from any prompt.
var errLeave = errors.New("leaving the menu")

// errBack is returned when the person went back to the menu before any
// action ran, so there is nothing to pause over.
var errBack = errors.New("back to the menu")

// choice is one line of a chooser: typing its number picks it.
type choice struct {
	key   string // "1".."N", or "0" for quit/back
	label string
	hint  string // shown dimmed after the label
}

// tui draws the menu's lists and forms with tview. tcell, under it, asks
// the terminal nothing, neither when the program starts nor later: the menu
// library costs the other commands nothing on a terminal (the TUI library
// used before asked every terminal for its background colour as mbk started,
// and waited 5 s on one that does not answer).
//
// Each prompt is a screen of its own on the alternate screen; between them,
// on the normal screen, the commands the menu runs print as they would when
// typed, and each prompt leaves one line saying what was chosen, so the
// scrollback reads as a transcript.
type tui struct {
	// tty is the one /dev/tty every screen draws on: tcell would open a
	// new one for each screen it makes itself, and never close it.
	tty tcell.Tty
	// tr writes what the menu says in the person's language.
	tr *i18n.Printer
}

// openTUI opens the terminal and refuses one that tcell cannot drive
// ($TERM unknown or not cursor-addressable) before any prompt.
func openTUI(tr *i18n.Printer) (*tui, error) {
	tty, err := tcell.NewDevTty()
	if err != nil {
		return nil, err
	}
	// Making a screen reads the terminal's description and writes nothing.
	if _, err := tcell.NewTerminfoScreenFromTty(tty); err != nil {
		return nil, err
	}
	// The terminal's own colours, whatever its background: the cursor's
	// colour is a palette entry the terminal's theme defines.
	tview.Styles = tview.Theme{
		PrimitiveBackgroundColor: tcell.ColorDefault, ContrastBackgroundColor: tcell.ColorDefault,
		MoreContrastBackgroundColor: tcell.ColorDefault, BorderColor: tcell.ColorDefault,
		TitleColor: tcell.ColorDefault, GraphicsColor: tcell.ColorDefault,
		PrimaryTextColor: tcell.ColorDefault, SecondaryTextColor: tcell.ColorDefault,
		TertiaryTextColor: tcell.ColorDefault, InverseTextColor: tcell.ColorDefault,
		ContrastSecondaryTextColor: tcell.ColorDefault,
	}
	return &tui{tty: tty, tr: tr}, nil
}

var (
	styleCursor = tcell.StyleDefault.Bold(true).Foreground(tcell.ColorPurple)
	styleDim    = tcell.StyleDefault.Dim(true)
	styleField  = tcell.StyleDefault.Underline(true)
)

// dim and bold style the transcript lines printed on the normal screen.
func dim(s string) string  { return "\x1b[2m" + s + "\x1b[0m" }
func bold(s string) string { return "\x1b[1m" + s + "\x1b[0m" }

// startedScreen is a screen already started: tview starts the screen it is
// given, and an error there would go unseen.
type startedScreen struct{ tcell.Screen }

func (startedScreen) Init() error { return nil }

// app makes an application on a new screen of the menu's terminal.
func (u *tui) app() (*tview.Application, error) {
	s, err := tcell.NewTerminfoScreenFromTty(u.tty)
	if err != nil {
		return nil, fmt.Errorf("cannot draw on the terminal: %w", err)
	}
	if err := s.Init(); err != nil {
		return nil, fmt.Errorf("cannot draw on the terminal: %w", err)
	}
	return tview.NewApplication().SetScreen(startedScreen{s}), nil
}

// runScreen shows the application until one of its handlers stops it, or the
// context ends (errLeave).
func runScreen(ctx context.Context, app *tview.Application) error {
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-ctx.Done():
			// Queued, so that it runs inside the event loop even when
			// the loop has not started yet.
			app.QueueUpdate(app.Stop)
		case <-finished:
		}
	}()
	if err := app.Run(); err != nil || ctx.Err() != nil {
		return errLeave
	}
	return nil
}

// chooser holds a list's digits typed so far, for lists longer than nine.
type chooser struct {
	items []choice
	typed string
}

// digit handles a typed digit: a number no other item's number starts with
// picks at once ("3" among nine items); otherwise ("1" among twelve) the
// cursor moves there and Enter or the next digit decides. It returns the
// item to move the cursor to (-1: stay) and whether it is picked.
func (c *chooser) digit(d string) (int, bool) {
	for _, typed := range []string{c.typed + d, d} {
		exact, longer := -1, false
		for i, it := range c.items {
			if it.key == typed {
				exact = i
			} else if strings.HasPrefix(it.key, typed) {
				longer = true
			}
		}
		switch {
		case exact >= 0 && !longer:
			c.typed = ""
			return exact, true
		case exact >= 0:
			c.typed = typed
			return exact, false
		case longer:
			c.typed = typed
			return -1, false
		}
	}
	c.typed = ""
	return -1, false
}

// line is an item's text in the list: a marker on the cursor's line, the
// number, the label and its hint dimmed.
func (c *chooser) line(i int, current bool) string {
	width := 1
	for _, it := range c.items {
		width = max(width, len(it.key))
	}
	marker := " "
	if current {
		marker = "›"
	}
	it := c.items[i]
	s := fmt.Sprintf("%s %*s  %s", marker, width, it.key, tview.Escape(it.label))
	if it.hint != "" {
		s += "  [::d]" + tview.Escape(it.hint) + "[::-]"
	}
	return s
}

// choose shows a list and returns the picked item's key; "" when the person
// went back (Esc, q). errLeave when they left the menu (Ctrl+C).
func (u *tui) choose(ctx context.Context, header, title string, items []choice) (string, error) {
	return u.chooseAt(ctx, header, title, items, 0)
}

// chooseAt is choose with the cursor first on items[start]: the default,
// what Enter picks.
func (u *tui) chooseAt(ctx context.Context, header, title string, items []choice, start int) (string, error) {
	app, err := u.app()
	if err != nil {
		return "", err
	}
	c := &chooser{items: items}
	picked, back, leave := -1, false, false

	list := tview.NewList().ShowSecondaryText(false).SetWrapAround(true).
		SetMainTextStyle(tcell.StyleDefault).SetSelectedStyle(styleCursor).SetUseStyleTags(true, false)
	for range items {
		list.AddItem("", "", 0, nil)
	}
	// The marker follows the cursor however it moved.
	app.SetBeforeDrawFunc(func(tcell.Screen) bool {
		for i := range items {
			list.SetItemText(i, c.line(i, i == list.GetCurrentItem()), "")
		}
		return false
	})
	app.SetInputCapture(func(ev *tcell.EventKey) *tcell.EventKey {
		switch ev.Key() {
		case tcell.KeyCtrlC:
			leave = true
			app.Stop()
			return nil
		case tcell.KeyEscape:
			back = true
			app.Stop()
			return nil
		case tcell.KeyEnter:
			picked = list.GetCurrentItem()
			app.Stop()
			return nil
		case tcell.KeyBackspace, tcell.KeyBackspace2:
			c.typed = ""
			return nil
		case tcell.KeyRune:
			r := ev.Rune()
			switch {
			case r >= '0' && r <= '9':
				to, pick := c.digit(string(r))
				if to >= 0 {
					list.SetCurrentItem(to)
				}
				if pick {
					picked = to
					app.Stop()
				}
				return nil
			case r == ' ':
				picked = list.GetCurrentItem()
				app.Stop()
				return nil
			case r == 'q':
				back = true
				app.Stop()
				return nil
			}
			c.typed = ""
			// vi's keys, as the list had before.
			if k, ok := map[rune]tcell.Key{'k': tcell.KeyUp, 'j': tcell.KeyDown, 'g': tcell.KeyHome, 'G': tcell.KeyEnd}[r]; ok {
				return tcell.NewEventKey(k, 0, tcell.ModNone)
			}
			return nil // other letters mean nothing here
		}
		c.typed = ""
		return ev // arrows, Tab, Home, End, PgUp, PgDn: the list moves
	})

	layout := tview.NewFlex().SetDirection(tview.FlexRow)
	if header != "" {
		h := tview.NewTextView().SetText(header).SetTextStyle(styleDim)
		layout.AddItem(h, strings.Count(header, "\n")+1, 0, false).AddItem(tview.NewBox(), 1, 0, false)
	}
	layout.AddItem(tview.NewTextView().SetText(title).SetTextStyle(tcell.StyleDefault.Bold(true)), 1, 0, false)
	layout.AddItem(list, 0, 1, true)
	// Below the list, drawn after it so that the list has scrolled: what
	// is out of sight, and the keys.
	more := tview.NewBox()
	more.SetDrawFunc(func(s tcell.Screen, x, y, w, h int) (int, int, int, int) {
		first, _ := list.GetOffset()
		_, _, _, shown := list.GetInnerRect()
		var out []string
		if first > 0 {
			out = append(out, u.tr.T("… %d more above", first))
		}
		if below := len(items) - first - shown; below > 0 {
			out = append(out, u.tr.T("… %d more below", below))
		}
		tview.Print(s, "[::d]    "+strings.Join(out, " · "), x, y, w, tview.AlignLeft, tcell.ColorDefault)
		tview.Print(s, "[::d]"+u.tr.T("↑/↓ Enter, or type a number · Esc back · Ctrl+C leave"), x, y+1, w, tview.AlignLeft, tcell.ColorDefault)
		return x, y, w, h
	})
	layout.AddItem(more, 2, 0, false)
	list.SetCurrentItem(start)
	app.SetRoot(layout, true).SetFocus(list)

	if err := runScreen(ctx, app); err != nil {
		return "", err
	}
	switch {
	case leave:
		return "", errLeave
	case back || picked < 0:
		return "", nil
	}
	// What stays in the scrollback: one line saying what was chosen.
	fmt.Println(dim(title) + " " + bold(items[picked].label))
	return items[picked].key, nil
}

// pause waits for Enter so the person can read an action's output before
// the menu is drawn again. Esc, space and q go back too; Ctrl+C leaves.
func (u *tui) pause(ctx context.Context) error {
	fmt.Println(dim(u.tr.T("Press Enter to go back to the menu.")))
	if err := u.tty.Start(); err != nil { // raw: keys come one by one
		return fmt.Errorf("cannot read the terminal: %w", err)
	}
	keys := make(chan []byte)
	stop := make(chan struct{})
	reading := make(chan struct{})
	go func() {
		defer close(reading)
		buf := make([]byte, 64)
		for {
			n, err := u.tty.Read(buf)
			if n > 0 {
				select {
				case keys <- append([]byte(nil), buf[:n]...):
				case <-stop:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		close(stop)
		u.tty.Stop() // ends the read: the reader must be gone before the next screen reads
		<-reading
	}()
	for {
		select {
		case <-ctx.Done():
			return errLeave
		case <-reading: // the terminal went away
			return errLeave
		case k := <-keys:
			if len(k) > 1 && k[0] == '\x1b' {
				continue // an arrow or function key, not Esc
			}
			for _, b := range k {
				switch b {
				case 3: // Ctrl+C
					return errLeave
				case '\r', '\n', ' ', 'q', '\x1b':
					return nil
				}
			}
		}
	}
}
