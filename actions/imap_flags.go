package actions

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// IMAPGetFlags is "IMAP Get Message Flags": it reads the flags of one message.
type IMAPGetFlags struct{}

// NewIMAPGetFlags returns the IMAP Get Message Flags action.
func NewIMAPGetFlags() Action { return IMAPGetFlags{} }

// imapFlagsUIDParam is the "uid" parameter of steps that work on one message.
func imapFlagsUIDParam() Param {
	return Param{Name: "uid", Label: "UID", Kind: KindNumber,
		Help: "UID of the message in the selected folder; empty means the message the IMAP Mail Loop is on."}
}

// Schema implements Action.
func (IMAPGetFlags) Schema() Schema {
	return Schema{
		ID: "imap.get_flags", Title: "IMAP Get Message Flags", Group: "IMAP", Sessions: "imap",
		Help:   "Reads the flags of a message in the selected folder (\\Seen, \\Flagged, \\Answered, \\Deleted, \\Draft and keywords) without changing them.",
		Params: []Param{ConnectionParam("imap"), imapFlagsUIDParam()},
		Outputs: []Output{
			{Name: "MessageFlags", Help: `All flags, space-separated, e.g. "\Seen \Flagged $Important".`},
			{Name: "MessageSeen", Help: "true when the message has been read (\\Seen)."},
			{Name: "MessageFlagged", Help: "true when the message is flagged (starred)."},
			{Name: "MessageAnswered", Help: "true when the message has been answered."},
			{Name: "MessageDeleted", Help: "true when the message is marked for deletion (\\Deleted)."},
			{Name: "MessageDraft", Help: "true when the message is a draft."},
		},
	}
}

// Run implements Action.
func (IMAPGetFlags) Run(ctx context.Context, env *Env) error {
	t, err := imapMsgsTarget(env)
	if err != nil {
		return err
	}
	s, uid, mailbox := t.s, t.uid, t.mailbox
	defer s.Watch(ctx)()
	msgs, err := s.Client.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		return imapMsgsErr(ctx, s, fmt.Sprintf("read flags of UID %d in %q", uid, mailbox), err)
	}
	m := imapMsgsFind(msgs, uid)
	if m == nil {
		return imapMsgsGone(s, mailbox, uid)
	}
	imapFlagsSetVars(env, m.Flags)
	env.Logger().Info("imap flags read", "folder", mailbox, "uid", uid, "flags", imapMsgsFlagText(m.Flags))
	return nil
}

// imapFlagsSetVars sets MessageFlags and the per-flag true/false outputs.
func imapFlagsSetVars(env *Env, flags []imap.Flag) {
	env.SetVar("MessageFlags", imapMsgsFlagText(flags))
	for _, f := range []struct {
		name string
		flag imap.Flag
	}{{"MessageSeen", imap.FlagSeen}, {"MessageFlagged", imap.FlagFlagged}, {"MessageAnswered", imap.FlagAnswered}, {"MessageDeleted", imap.FlagDeleted}, {"MessageDraft", imap.FlagDraft}} {
		env.SetVar(f.name, fmt.Sprint(imapMsgsHasFlag(flags, f.flag)))
	}
}

// IMAPSetFlags is "IMAP Set Message Flags": it adds, removes or replaces flags of one message.
type IMAPSetFlags struct{}

// NewIMAPSetFlags returns the IMAP Set Message Flags action.
func NewIMAPSetFlags() Action { return IMAPSetFlags{} }

// Schema implements Action.
func (IMAPSetFlags) Schema() Schema {
	return Schema{
		ID: "imap.set_flags", Title: "IMAP Set Message Flags", Group: "IMAP", Sessions: "imap",
		Help: "Adds, removes or replaces flags of a message in the selected folder (UID STORE). Marking \\Deleted does not delete: " +
			"an \"IMAP Delete Marked Messages\" step does. The folder must be selected read-write.",
		Params: []Param{
			ConnectionParam("imap"), imapFlagsUIDParam(),
			{Name: "mode", Label: "Mode", Kind: KindEnum, Default: "add", Choices: []string{"add", "remove", "replace"},
				Help: "add: set these flags and keep the others; remove: clear these flags; replace: the message has exactly these flags afterwards."},
			{Name: "flags", Label: "Flags", Kind: KindText,
				Help: `Flags separated by commas or spaces: \Seen, \Flagged, \Answered, \Deleted, \Draft, or keywords such as $Important or Invoice.`},
		},
		Outputs: []Output{{Name: "MessageFlags", Help: "The message's flags after the change, space-separated."}},
	}
}

// Run implements Action.
func (IMAPSetFlags) Run(ctx context.Context, env *Env) error {
	mode := env.Params.String("mode")
	flags, err := imapFlagsParse(env.Params.String("flags"))
	if err != nil {
		return err
	}
	if len(flags) == 0 && mode != "replace" {
		return fmt.Errorf("%q is empty: name at least one flag to %s (only replace may clear all flags)", "Flags", mode)
	}
	t, err := imapMsgsTarget(env)
	if err != nil {
		return err
	}
	s, uid, mailbox, readOnly := t.s, t.uid, t.mailbox, t.readOnly
	if env.SkipDryRun("change flags", "uid", uid, "mode", mode, "flags", env.Params.String("flags")) {
		return nil
	}
	if readOnly {
		return imapMsgsReadOnly(s, mailbox, "flags cannot be changed")
	}
	op := map[string]imap.StoreFlagsOp{"add": imap.StoreFlagsAdd, "remove": imap.StoreFlagsDel, "replace": imap.StoreFlagsSet}[mode]
	defer s.Watch(ctx)()
	msgs, err := s.Client.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: op, Flags: flags}, nil).Collect()
	if err != nil {
		return imapMsgsErr(ctx, s, fmt.Sprintf("%s flags %s on UID %d in %q", mode, imapMsgsFlagText(flags), uid, mailbox), err)
	}
	m := imapMsgsFind(msgs, uid)
	if m == nil {
		// A STORE that changed nothing may report nothing; ask, which also tells whether the message exists.
		got, err := s.Client.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, Flags: true}).Collect()
		if err != nil {
			return imapMsgsErr(ctx, s, fmt.Sprintf("read flags of UID %d in %q", uid, mailbox), err)
		}
		if m = imapMsgsFind(got, uid); m == nil {
			return imapMsgsGone(s, mailbox, uid)
		}
	}
	env.SetVar("MessageFlags", imapMsgsFlagText(m.Flags))
	env.Logger().Info("imap flags changed", "folder", mailbox, "uid", uid, "mode", mode, "flags", imapMsgsFlagText(flags), "now", imapMsgsFlagText(m.Flags))
	return nil
}

// imapFlagsSystem maps lower-case system flag names to their canonical form.
var imapFlagsSystem = map[string]imap.Flag{
	`\seen`: imap.FlagSeen, `\flagged`: imap.FlagFlagged, `\answered`: imap.FlagAnswered,
	`\deleted`: imap.FlagDeleted, `\draft`: imap.FlagDraft,
}

// imapFlagsParse reads a list of flags separated by commas, semicolons, spaces or newlines,
// canonicalising system flags and checking keywords are IMAP atoms.
func imapFlagsParse(s string) ([]imap.Flag, error) {
	var out []imap.Flag
	var bad []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(",; \t\r\n", r) }) {
		var flag imap.Flag
		if strings.HasPrefix(f, `\`) {
			sys, ok := imapFlagsSystem[strings.ToLower(f)]
			if !ok {
				if strings.EqualFold(f, `\Recent`) {
					bad = append(bad, `\Recent is set by the server only`)
				} else {
					bad = append(bad, fmt.Sprintf(`%q is not a system flag (\Seen, \Flagged, \Answered, \Deleted, \Draft); keywords do not start with \`, f))
				}
				continue
			}
			flag = sys
		} else {
			if err := imapFlagsCheckKeyword(f); err != nil {
				bad = append(bad, err.Error())
				continue
			}
			flag = imap.Flag(f)
		}
		if !slices.Contains(out, flag) {
			out = append(out, flag)
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%q: %s", "Flags", strings.Join(bad, "; "))
	}
	return out, nil
}

// imapFlagsCheckKeyword checks that k is a valid keyword (an IMAP atom).
func imapFlagsCheckKeyword(k string) error {
	if k == "" {
		return fmt.Errorf("empty keyword")
	}
	for _, r := range k {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`(){%*"\]`, r) {
			return fmt.Errorf("keyword %q may only use ASCII letters, digits and punctuation other than ( ) { %% * \" \\ ]", k)
		}
	}
	return nil
}

// imapMsgsFlagText joins flags with spaces, leaving out \Recent (a per-session marker
// that IMAP4rev2 dropped and no step can change).
func imapMsgsFlagText(flags []imap.Flag) string {
	var b strings.Builder
	for _, f := range flags {
		if strings.EqualFold(string(f), `\Recent`) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(string(f))
	}
	return b.String()
}

// imapMsgsHasFlag reports whether flags contains f (system flags compare case-insensitively).
func imapMsgsHasFlag(flags []imap.Flag, f imap.Flag) bool {
	for _, g := range flags {
		if strings.EqualFold(string(g), string(f)) {
			return true
		}
	}
	return false
}

// imapMsgsReadOnly is the error for a change on a folder selected with EXAMINE.
func imapMsgsReadOnly(s *IMAPSession, mailbox, what string) error {
	return fmt.Errorf("connection %q selected folder %q read-only, so %s: set \"Read-only\" (read_only) to false on the \"IMAP Select Mail Folder\" step", s.Name, mailbox, what)
}
