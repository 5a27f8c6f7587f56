package app

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/mailwright/mailwright/oauthparams"
)

// paramsFieldLabels names the fields of Problem.Field as the form labels them.
var paramsFieldLabels = map[string]string{
	"name": "Record Name", "account": "Client Account", "client_id": "Client ID",
	"client_secret": "Client Secret", "auth_url": "Authorization Endpoint",
	"token_url": "Access Token Endpoint", "scope": "Scope", "device_url": "Device Endpoint",
	"redirect_url": "Redirect URL", "extra_params": "Extra Parameters",
}

// paramsFieldKey maps a Problem.Field to the form field showing it ("extra_params.x" to
// "extra_params").
func paramsFieldKey(field string) string {
	if k, _, ok := strings.Cut(field, "."); ok {
		return k
	}
	return field
}

// formProblems validates the form: ParamSet.Validate plus the Extra Parameters syntax.
func (p *ParamsScreen) formProblems() (oauthparams.ParamSet, []oauthparams.Problem) {
	set, probs := p.formSet()
	if err := set.Validate(); err != nil {
		var ve oauthparams.ValidationError
		if errors.As(err, &ve) {
			probs = append(ve.Problems, probs...)
		} else {
			probs = append(probs, oauthparams.Problem{Field: "name", Message: err.Error()})
		}
	}
	return set, probs
}

// updateState refreshes everything derived from the form: heading, status, problems and
// which buttons can be used.
func (p *ParamsScreen) updateState() {
	set, probs := p.formProblems()
	if p.origName == "" {
		p.Editing.SetText("New parameter set (not saved yet)")
	} else {
		p.Editing.SetText("Editing “" + p.origName + "”")
	}
	st := set.Status(time.Now())
	res, label, _ := paramsBadge(st.State)
	p.StatusIcon.SetResource(res)
	text := "Status: " + label
	if st.Reason != "" && st.State != oauthparams.StateIncomplete {
		text += " — " + st.Reason
	}
	text += " · last refresh " + paramsWhen(st.LastRefresh)
	if set.LastError != "" && st.State != oauthparams.StateReady {
		text += "\nLast error: " + set.LastError
	}
	p.StatusText.SetText(text)

	if set.Secrets.RefreshToken != "" {
		p.RefreshToken.SetText(paramsTokenMask)
		p.ClearToken.Enable()
	} else {
		p.RefreshToken.SetText("")
		p.ClearToken.Disable()
	}
	if pr, ok := oauthparams.FindPreset(p.preset); ok {
		p.Provider.SetText(pr.Name)
	} else {
		p.Provider.SetText("none: enter the endpoints, or use Load Predefined Endpoints")
	}
	p.showProblems(probs)

	dirty := p.dirty()
	p.enable(p.Save, !p.busy && dirty && len(probs) == 0)
	p.enable(p.Revert, !p.busy && dirty)
	p.enable(p.Duplicate, !p.busy && p.origName != "")
	p.enable(p.Delete, !p.busy && p.origName != "")
	p.enable(p.New, !p.busy)
	p.enable(p.LoadPreset, !p.busy)
	p.enable(p.SignIn, !p.busy && len(probs) == 0)
	p.enable(p.TestConn, !p.busy && p.origName != "")
	p.enable(p.Export, len(p.rows) > 0)
}

// showProblems puts each problem under its field and a summary below the form. A blank
// new form only says where to start.
func (p *ParamsScreen) showProblems(probs []oauthparams.Problem) {
	byField := map[string][]string{}
	for _, pr := range probs {
		k := paramsFieldKey(pr.Field)
		byField[k] = append(byField[k], pr.Message)
	}
	show := p.touched || p.origName != ""
	advancedProblem := false
	for k, l := range p.fieldErrs {
		msgs := byField[k]
		if !show || len(msgs) == 0 {
			l.Hide()
			continue
		}
		l.SetText(strings.Join(msgs, "\n"))
		l.Show()
		advancedProblem = advancedProblem || k == "device_url" || k == "redirect_url" || k == "extra_params"
	}
	if advancedProblem && p.advanced != nil {
		p.advanced.Open(0)
	}
	switch {
	case len(probs) == 0:
		p.Problems.SetText("")
		p.Problems.Hide()
		return
	case !show:
		p.Problems.SetText("Start with Load Predefined Endpoints, then fill in Record Name, Client Account and Client ID.")
		p.Problems.Importance = widget.MediumImportance
	default:
		lines := paramsProblemLines(probs)
		p.Problems.SetText(strings.Join(lines, "\n"))
		p.Problems.Importance = widget.DangerImportance
	}
	p.Problems.Show()
	p.Problems.Refresh()
}

// paramsProblemLines says what to fix, with the form's field labels: a heading and one
// bullet per problem.
func paramsProblemLines(probs []oauthparams.Problem) []string {
	lines := make([]string, 0, len(probs)+1)
	lines = append(lines, fmt.Sprintf("Cannot save yet — %s to fix:", paramsCount(len(probs), "problem")))
	for _, pr := range probs {
		label := paramsFieldLabels[paramsFieldKey(pr.Field)]
		if label == "" {
			label = pr.Field
		}
		if k, ok := strings.CutPrefix(pr.Field, "extra_params."); ok {
			label += " (" + k + ")"
		}
		lines = append(lines, "• "+label+": "+pr.Message)
	}
	return lines
}

// paramsCount is "1 problem", "2 problems".
func paramsCount(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// showProblemsDialog explains why the form cannot be used yet.
func (p *ParamsScreen) showProblemsDialog(title string, probs []oauthparams.Problem) {
	p.showMessage(title, strings.Join(paramsProblemLines(probs), "\n"), theme.NewErrorThemedResource(theme.ErrorIcon()))
}

func (p *ParamsScreen) enable(b *widget.Button, on bool) {
	if on {
		b.Enable()
	} else {
		b.Disable()
	}
}

func (p *ParamsScreen) setBusy(on bool) {
	p.busy = on
	p.updateState()
}
