package app

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/oauthparams"
)

func (p *ParamsScreen) onNew() {
	p.guard(func() {
		p.startNew(oauthparams.ParamSet{})
		p.selectCurrent()
	}, nil)
}

// onDuplicate starts a new set copying the form, client secret included, but not the
// tokens, which belong to the original set's sign-in.
func (p *ParamsScreen) onDuplicate() {
	set, _ := p.formSet()
	paramsClearTokens(&set)
	set.LastRefresh, set.LastError = time.Time{}, ""
	set.Name = p.freeName(strings.TrimSpace(set.Name) + " (copy)")
	p.startNew(set)
	p.selectCurrent()
}

// freeName returns name, or name with " 2", " 3"... when the list already has it.
func (p *ParamsScreen) freeName(name string) string {
	for i, n := 2, name; ; i++ {
		if p.rowIndex(n) < 0 {
			return n
		}
		n = fmt.Sprintf("%s %d", name, i)
	}
}

func (p *ParamsScreen) onRevert() {
	if p.origName == "" {
		p.startNew(oauthparams.ParamSet{})
		return
	}
	p.fill(p.orig, true)
}

func (p *ParamsScreen) onClearToken() {
	p.tokenCleared = true
	p.touched = true
	p.updateState()
}

func (p *ParamsScreen) onDelete() {
	name := p.origName
	if name == "" {
		return
	}
	d := dialog.NewConfirm("Delete parameter set",
		"Delete “"+name+"” with its client secret and tokens?\nTasks that use it will fail until another set is chosen.",
		func(ok bool) {
			if ok {
				p.deleteSet(name)
			}
		}, p.win)
	d.SetConfirmText("Delete")
	d.SetConfirmImportance(widget.DangerImportance)
	p.confirmDlg = d
	d.Show()
}

func (p *ParamsScreen) deleteSet(name string) {
	p.setBusy(true)
	store, tokens := p.s.Params, p.s.Tokens
	go func() {
		err := store.Delete(name)
		if err == nil && tokens != nil {
			tokens.Forget(name)
		}
		p.do(func() {
			p.setBusy(false)
			if err != nil {
				p.showError("Could not delete the parameter set", fmt.Errorf("delete %s: %w", name, err))
				return
			}
			p.startNew(oauthparams.ParamSet{})
			p.Refresh()
		})
	}()
}

// save stores the form: a new set with Put (refusing a name in use), an existing one with
// Update, so that tokens refreshed meanwhile by a running task are kept. then, if not nil,
// runs with the saved name afterwards.
func (p *ParamsScreen) save(then func(name string)) {
	set, probs := p.formProblems()
	if len(probs) > 0 {
		p.showProblemsDialog("The parameter set cannot be saved", probs)
		return
	}
	set.Normalize()
	origName, cleared := p.origName, p.tokenCleared
	p.setBusy(true)
	store, tokens := p.s.Params, p.s.Tokens
	go func() {
		saved, err := paramsStore(store, set, origName, cleared)
		if err == nil && tokens != nil {
			tokens.Forget(origName)
			tokens.Forget(saved.Name)
		}
		p.do(func() {
			p.setBusy(false)
			if err != nil {
				p.showError("Could not save the parameter set", err)
				return
			}
			p.fill(saved, true)
			p.Refresh()
			if then != nil {
				then(saved.Name)
			}
		})
	}()
}

// paramsStore writes set and reads it back. origName is its stored name ("" for new).
func paramsStore(store *oauthparams.Store, set oauthparams.ParamSet, origName string, clearTokens bool) (oauthparams.ParamSet, error) {
	if origName == "" {
		switch _, err := store.Get(set.Name); {
		case err == nil:
			return set, fmt.Errorf("save %s: %w: choose another Record Name", set.Name, oauthparams.ErrExists)
		case !errors.Is(err, oauthparams.ErrNotFound):
			return set, fmt.Errorf("save %s: %w", set.Name, err)
		}
		if err := store.Put(set); err != nil {
			return set, fmt.Errorf("save %s: %w", set.Name, err)
		}
	} else {
		err := store.Update(origName, func(cur *oauthparams.ParamSet) error {
			cur.Name, cur.Account, cur.ClientID = set.Name, set.Account, set.ClientID
			cur.Secrets.ClientSecret = set.Secrets.ClientSecret
			cur.AuthURL, cur.TokenURL, cur.DeviceURL = set.AuthURL, set.TokenURL, set.DeviceURL
			cur.Scope, cur.RedirectURL, cur.Preset = set.Scope, set.RedirectURL, set.Preset
			cur.ExtraParams = maps.Clone(set.ExtraParams)
			if clearTokens {
				paramsClearTokens(cur)
			}
			return nil
		})
		if err != nil {
			return set, fmt.Errorf("save %s: %w", set.Name, err)
		}
	}
	saved, err := store.Get(set.Name)
	if err != nil {
		return set, fmt.Errorf("read back %s: %w", set.Name, err)
	}
	return saved, nil
}
