package menu

import (
	"context"
	"fmt"
	"strings"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"
)

// field is one line of a form.
type field struct {
	title    string
	desc     string // shown under the form while the field has the focus
	value    *string
	validate func(string) error
	masked   bool // typed characters show as *, and the value is never printed
}

// fieldWidth is the width of a form's input fields: long enough for a host
// name or a few addresses, and it scrolls beyond.
const fieldWidth = 60

// form asks for fields on one screen, under a heading of one or more lines
// (what was printed before is out of sight while it shows). Enter checks the field and moves to
// the next; on the last one it checks them all and ends. Tab and Shift+Tab
// move between fields. It returns false when the person cancelled (Esc or
// Ctrl+C go back to the menu), the values unchanged; errLeave when the
// context ended.
func (u *tui) form(ctx context.Context, heading string, fields []field) (bool, error) {
	app, err := u.app()
	if err != nil {
		return false, err
	}
	labelWidth, descLines := 0, 1
	for _, f := range fields {
		labelWidth = max(labelWidth, tview.TaggedStringWidth(tview.Escape(f.title))+4)
		descLines = max(descLines, strings.Count(f.desc, "\n")+1)
	}
	desc := tview.NewTextView().SetTextStyle(styleDim)
	problem := tview.NewTextView().SetDynamicColors(true)
	inputs := make([]*tview.InputField, len(fields))
	done, cancelled := false, false

	check := func(i int) error {
		if fields[i].validate == nil {
			return nil
		}
		return fields[i].validate(inputs[i].GetText())
	}
	complain := func(err error) {
		problem.SetText("[red::b]✗ " + tview.Escape(err.Error()))
	}
	for i, f := range fields {
		in := tview.NewInputField().SetText(*f.value).SetLabelWidth(labelWidth).
			SetFieldWidth(fieldWidth).SetFieldStyle(styleField)
		if f.masked {
			in.SetMaskCharacter('*')
		}
		// The focused field's label is marked, and bold, so that the
		// whole label is drawn again when the focus moves.
		label := func(focused bool) {
			if focused {
				in.SetLabel("› " + f.title).SetLabelStyle(styleCursor)
			} else {
				in.SetLabel("  " + f.title).SetLabelStyle(tcell.StyleDefault)
			}
		}
		label(false)
		in.SetFocusFunc(func() {
			label(true)
			desc.SetText(f.desc)
			problem.SetText("")
		})
		in.SetBlurFunc(func() { label(false) })
		in.SetDoneFunc(func(key tcell.Key) {
			switch key {
			case tcell.KeyEscape:
				cancelled = true
				app.Stop()
			case tcell.KeyBacktab:
				app.SetFocus(inputs[(i+len(inputs)-1)%len(inputs)])
			case tcell.KeyTab, tcell.KeyEnter:
				if err := check(i); err != nil {
					complain(err)
					return
				}
				if key == tcell.KeyTab || i < len(inputs)-1 {
					app.SetFocus(inputs[(i+1)%len(inputs)])
					return
				}
				for j := range inputs {
					if err := check(j); err != nil {
						app.SetFocus(inputs[j])
						complain(err)
						return
					}
				}
				done = true
				app.Stop()
			}
		})
		inputs[i] = in
	}
	app.SetInputCapture(func(ev *tcell.EventKey) *tcell.EventKey {
		if ev.Key() == tcell.KeyCtrlC {
			cancelled = true
			app.Stop()
			return nil
		}
		return ev
	})

	layout := tview.NewFlex().SetDirection(tview.FlexRow).
		AddItem(tview.NewTextView().SetText(heading).SetTextStyle(tcell.StyleDefault.Bold(true)), strings.Count(heading, "\n")+1, 0, false).
		AddItem(tview.NewBox(), 1, 0, false)
	for _, in := range inputs {
		layout.AddItem(in, 1, 0, false)
	}
	layout.AddItem(tview.NewBox(), 1, 0, false).
		AddItem(desc, descLines, 0, false).
		AddItem(problem, 1, 0, false).
		AddItem(tview.NewBox(), 1, 0, false).
		AddItem(tview.NewTextView().SetTextStyle(styleDim).
			SetText(u.tr.T("Enter next · Tab/Shift+Tab move · Ctrl+U clear · Esc cancel · Ctrl+C cancel")), 1, 0, false).
		AddItem(tview.NewBox(), 0, 1, false)
	app.SetRoot(layout, true).SetFocus(inputs[0])

	if err := runScreen(ctx, app); err != nil {
		return false, err
	}
	if cancelled || !done {
		fmt.Println(u.tr.T("Cancelled: nothing was changed."))
		return false, nil
	}
	// What stays in the scrollback: the answers, but never a secret.
	for i, f := range fields {
		*f.value = inputs[i].GetText()
		shown := *f.value
		if f.masked {
			shown = u.tr.T("(left empty)")
			if *f.value != "" {
				shown = u.tr.T("(typed, not shown)")
			}
		}
		fmt.Println(dim(f.title) + " " + bold(shown))
	}
	return true, nil
}
