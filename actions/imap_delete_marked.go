package actions

import (
	"context"
	"fmt"
	"strconv"

	"github.com/emersion/go-imap/v2"
)

// IMAPDeleteMarked is "IMAP Delete Marked Messages": it permanently removes messages
// marked \Deleted from the selected folder, and only those it was asked to.
type IMAPDeleteMarked struct{}

// NewIMAPDeleteMarked returns the IMAP Delete Marked Messages action.
func NewIMAPDeleteMarked() Action { return IMAPDeleteMarked{} }

// Schema implements Action.
func (IMAPDeleteMarked) Schema() Schema {
	return Schema{
		ID: "imap.delete_marked", Title: "IMAP Delete Marked Messages", Group: "IMAP", Sessions: "imap",
		Help: "Permanently removes messages marked \\Deleted (see IMAP Set Message Flags) from the selected folder. " +
			"It removes exactly the marked messages it names (UID EXPUNGE); messages that are not marked are never removed.",
		Params: []Param{
			ConnectionParam("imap"),
			{Name: "uids", Label: "UIDs", Kind: KindText,
				Help: "UIDs to remove, e.g. 12, 15, 20:25; only those of them marked \\Deleted are removed. Empty means every message marked \\Deleted in the folder."},
			{Name: "allow_plain_expunge", Label: "Allow plain EXPUNGE", Kind: KindBool, Default: "false", Advanced: true,
				Help: "For servers without UIDPLUS only: allow EXPUNGE, which removes every message marked \\Deleted in the folder, including ones other mail programs marked and ones not in UIDs."},
		},
		Outputs: []Output{{Name: "DeletedCount", Help: "Number of messages removed."}},
	}
}

// Run implements Action.
func (IMAPDeleteMarked) Run(ctx context.Context, env *Env) error {
	var want imap.UIDSet
	for _, item := range env.Params.List("uids") {
		set, err := imapMsgsParseNumSet(item)
		if err != nil {
			return fmt.Errorf("%q: %v", "UIDs", err)
		}
		want = append(want, set...)
	}
	s, err := IMAPFor(env)
	if err != nil {
		return err
	}
	if env.SkipDryRun("expunge the messages marked \\Deleted", "connection", s.Name, "uids", env.Params.String("uids")) {
		return nil
	}
	mailbox, readOnly, _, err := s.Selected()
	if err != nil {
		return err
	}
	if readOnly {
		return imapMsgsReadOnly(s, mailbox, "nothing can be deleted")
	}
	log := env.Logger()
	defer s.Watch(ctx)()
	data, err := s.Client.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagDeleted}}, nil).Wait()
	if err != nil {
		return imapMsgsErr(ctx, s, fmt.Sprintf("search messages marked \\Deleted in %q", mailbox), err)
	}
	var marked []imap.UID
	if set, ok := data.All.(imap.UIDSet); ok {
		marked, _ = set.Nums()
	}
	var target imap.UIDSet
	for _, u := range marked {
		if len(want) == 0 || want.Contains(u) {
			target.AddNum(u)
		}
	}
	if len(target) == 0 {
		env.SetVar("DeletedCount", "0")
		log.Info("imap delete marked: no message to remove", "folder", mailbox, "marked", len(marked))
		return nil
	}
	count := 0
	if s.Caps().Has(imap.CapUIDPlus) {
		if _, err = s.Client.UIDExpunge(target).Collect(); err != nil {
			return imapMsgsErr(ctx, s, fmt.Sprintf("UID EXPUNGE %s in %q", target, mailbox), err)
		}
		// Count what is gone rather than the EXPUNGE replies, which may include other
		// clients' removals the server reports at the same time.
		left, err := s.Client.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{target}}, nil).Wait()
		if err != nil {
			return imapMsgsErr(ctx, s, fmt.Sprintf("check the removal in %q", mailbox), err)
		}
		kept := 0
		if set, ok := left.All.(imap.UIDSet); ok {
			nums, _ := set.Nums()
			kept = len(nums)
		}
		n, _ := target.Nums()
		count = len(n) - kept
	} else {
		if !env.Params.Bool("allow_plain_expunge") {
			return fmt.Errorf("imap delete marked in %q on %s: the server lacks UIDPLUS, so it cannot remove just UIDs %s; "+
				"its plain EXPUNGE would also remove every other message marked \\Deleted, including ones other mail programs marked. "+
				"Set \"Allow plain EXPUNGE\" (allow_plain_expunge) to true if that is acceptable", mailbox, s.Server, target)
		}
		log.Warn("imap delete marked: the server lacks UIDPLUS; EXPUNGE removes every message marked \\Deleted in the folder (allow_plain_expunge)", "folder", mailbox)
		seqs, err := s.Client.Expunge().Collect()
		if err != nil {
			return imapMsgsErr(ctx, s, fmt.Sprintf("EXPUNGE in %q", mailbox), err)
		}
		count = len(seqs)
	}
	env.SetVar("DeletedCount", strconv.Itoa(count))
	log.Info("imap delete marked: messages removed", "folder", mailbox, "count", count, "uids", target.String())
	return nil
}
