package actions

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// IMAPMove is "IMAP Move Message": it moves one message of the selected folder to another
// folder on the same server.
type IMAPMove struct{}

// NewIMAPMove returns the IMAP Move Message action.
func NewIMAPMove() Action { return IMAPMove{} }

// Schema implements Action.
func (IMAPMove) Schema() Schema {
	return Schema{
		ID: "imap.move", Title: "IMAP Move Message", Group: "IMAP", Sessions: "imap",
		Help: "Moves a message of the selected folder to another folder of the same account (MOVE; on servers without it: copy, " +
			"mark \\Deleted and remove just that message). It never removes other messages marked \\Deleted.",
		Params: []Param{
			ConnectionParam("imap"), imapFlagsUIDParam(),
			{Name: "target_folder", Label: "Target folder", Kind: KindText, Required: true, Help: "Folder to move the message to, e.g. Archive or Archive/2024 (the server's separator)."},
			{Name: "create_folder", Label: "Create folder if missing", Kind: KindBool, Default: "false", Help: "Create the target folder when it does not exist; otherwise a missing folder is an error."},
		},
		Outputs: []Output{
			{Name: "MovedUID", Help: "The message's UID in the target folder (empty when the server does not say)."},
			{Name: "MoveComplete", Help: "true when the message left the source folder; false when a server without MOVE and UIDPLUS left it there, copied and marked \\Deleted."},
		},
	}
}

// Run implements Action.
func (IMAPMove) Run(ctx context.Context, env *Env) error {
	target := strings.TrimSpace(env.Params.String("target_folder"))
	t, err := imapMsgsTarget(env)
	if err != nil {
		return err
	}
	s, uid, mailbox, readOnly := t.s, t.uid, t.mailbox, t.readOnly
	if readOnly {
		return imapMsgsReadOnly(s, mailbox, "messages cannot be moved out of it")
	}
	if imapMoveSameFolder(mailbox, target) {
		return fmt.Errorf("imap move UID %d: it is already in folder %q: choose another \"Target folder\"", uid, mailbox)
	}
	if env.SkipDryRun("move a message", "uid", uid, "from", mailbox, "to", target) {
		return nil
	}
	log := env.Logger()
	defer s.Watch(ctx)()
	what := fmt.Sprintf("move UID %d from %q to %q", uid, mailbox, target)

	got, err := s.Client.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true}).Collect()
	if err != nil {
		return imapMsgsErr(ctx, s, what, err)
	}
	if imapMsgsFind(got, uid) == nil {
		return imapMsgsGone(s, mailbox, uid)
	}
	if err := imapMoveEnsureFolder(ctx, s, target, env.Params.Bool("create_folder"), log.Info); err != nil {
		return err
	}

	var dest imap.NumSet
	complete := true
	if s.Caps().Has(imap.CapMove) {
		data, err := s.Client.Move(imap.UIDSetNum(uid), target).Wait()
		if err != nil {
			return imapMsgsErr(ctx, s, what, err)
		}
		dest = data.DestUIDs
	} else {
		// Not Client.Move's fallback: without UIDPLUS it sends a plain EXPUNGE, which would
		// remove every message marked \Deleted in the folder.
		data, err := s.Client.Copy(imap.UIDSetNum(uid), target).Wait()
		if err != nil {
			return imapMsgsErr(ctx, s, what+" (copy)", err)
		}
		dest = data.DestUIDs
		if err := s.Client.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			return imapMsgsErr(ctx, s, what+" (the copy is made; marking the original \\Deleted failed)", err)
		}
		if s.Caps().Has(imap.CapUIDPlus) {
			if _, err := s.Client.UIDExpunge(imap.UIDSetNum(uid)).Collect(); err != nil {
				return imapMsgsErr(ctx, s, what+" (the copy is made and the original marked \\Deleted; removing it failed)", err)
			}
		} else {
			complete = false
			log.Warn("imap move: the server has neither MOVE nor UIDPLUS, so the original stays in the source folder, marked \\Deleted; "+
				"an \"IMAP Delete Marked Messages\" step with allow_plain_expunge can remove it (and every other message marked \\Deleted)",
				"folder", mailbox, "uid", uid, "target", target)
		}
	}
	moved := ""
	if set, ok := dest.(imap.UIDSet); ok {
		if nums, ok := set.Nums(); ok && len(nums) == 1 {
			moved = strconv.FormatUint(uint64(nums[0]), 10)
		}
	}
	env.SetVar("MovedUID", moved)
	env.SetVar("MoveComplete", strconv.FormatBool(complete))
	log.Info("imap message moved", "folder", mailbox, "uid", uid, "target", target, "new_uid", moved, "complete", complete)
	return nil
}

// imapMoveSameFolder reports whether a and b name the same folder (INBOX in any case).
func imapMoveSameFolder(a, b string) bool {
	if strings.EqualFold(a, "INBOX") && strings.EqualFold(b, "INBOX") {
		return true
	}
	return a == b
}

// imapMoveEnsureFolder checks that folder exists, creating it when create is set.
func imapMoveEnsureFolder(ctx context.Context, s *IMAPSession, folder string, create bool, logf func(string, ...any)) error {
	list, err := s.Client.List("", folder, nil).Collect()
	if err != nil {
		return imapMsgsErr(ctx, s, fmt.Sprintf("look up folder %q", folder), err)
	}
	for _, l := range list {
		if imapMoveSameFolder(l.Mailbox, folder) {
			for _, a := range l.Attrs {
				if a == imap.MailboxAttrNoSelect || a == imap.MailboxAttrNonExistent {
					return fmt.Errorf("imap: %q on %s is not a folder that can hold messages (%s): choose another \"Target folder\"", folder, s.Server, a)
				}
			}
			return nil
		}
	}
	if !create {
		return fmt.Errorf("imap: target folder %q does not exist on %s: check its name (subfolders use the server's separator, e.g. Archive/2024) or set \"Create folder if missing\" (create_folder) to true", folder, s.Server)
	}
	if err := s.Client.Create(folder, nil).Wait(); err != nil {
		return imapMsgsErr(ctx, s, fmt.Sprintf("create folder %q", folder), err)
	}
	logf("imap move: created the target folder", "folder", folder)
	return nil
}
