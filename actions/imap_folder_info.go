package actions

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// IMAPFolderInfo is the "IMAP Folder Info" action: it reports a folder's counts with
// STATUS, without selecting it, and can list folders.
type IMAPFolderInfo struct{}

// NewIMAPFolderInfo returns the IMAP Folder Info action.
func NewIMAPFolderInfo() Action { return IMAPFolderInfo{} }

// Schema implements Action.
func (IMAPFolderInfo) Schema() Schema {
	return Schema{
		ID:    "imap.folder_info",
		Title: "IMAP Folder Info",
		Group: "IMAP",
		Help: "Reads a folder's message count, unseen count, UIDNEXT, UIDVALIDITY and size with the IMAP STATUS command, without selecting it " +
			"(the selected folder stays selected). With a list pattern it also lists folder names. " +
			"The size needs the server's STATUS=SIZE (or IMAP4rev2) support; without it FolderSize is empty. " +
			"The obsolete \"recent\" count is not reported: IMAP4rev2 dropped it and the IMAP library cannot read it.",
		Params: []Param{
			ConnectionParam("imap"),
			{Name: "folder", Label: "Folder", Kind: KindText, Default: "INBOX",
				Help: "Folder name as the server shows it, e.g. INBOX or Archive/2024."},
			{Name: "list_pattern", Label: "List pattern", Kind: KindText,
				Help: "Empty: list nothing. Otherwise an IMAP LIST pattern whose matching folder names go to FolderList: * is every folder, Archive/* every folder below Archive, % one level only."},
		},
		Outputs: []Output{
			{Name: "FolderMessages", Help: "Number of messages in the folder."},
			{Name: "FolderUnseen", Help: "Number of messages without the \\Seen flag."},
			{Name: "FolderUIDNext", Help: "The UID the next message added to the folder will get at the earliest."},
			{Name: "FolderUIDValidity", Help: "The folder's UIDVALIDITY."},
			{Name: "FolderSize", Help: "Total size of the folder's messages in bytes; empty when the server cannot report it (no STATUS=SIZE)."},
			{Name: "FolderList", Help: "Folder names matching \"List pattern\", one per line, sorted; empty when no pattern is set."},
		},
		Sessions: "imap",
	}
}

// Run implements Action.
func (IMAPFolderInfo) Run(ctx context.Context, env *Env) error {
	s, err := IMAPFor(env)
	if err != nil {
		return fmt.Errorf("imap folder info: %w", err)
	}
	folder := imapFolderName(env.Params.String("folder"))
	where := fmt.Sprintf("imap folder info %q on %s", folder, s.Server)
	stop := s.Watch(ctx)
	defer stop()

	opts := &imap.StatusOptions{NumMessages: true, NumUnseen: true, UIDNext: true, UIDValidity: true}
	opts.Size = s.Caps().Has(imap.CapStatusSize)
	st, err := s.Client.Status(folder, opts).Wait()
	if err != nil {
		return fmt.Errorf("%s: %w", where, imapFolderError(ctx, s, folder, err))
	}
	if st.NumMessages == nil {
		return fmt.Errorf("%s: the server's STATUS answer did not name the folder", where)
	}
	num := func(p *uint32) string {
		if p == nil {
			return ""
		}
		return strconv.FormatUint(uint64(*p), 10)
	}
	size := ""
	if st.Size != nil {
		size = strconv.FormatInt(*st.Size, 10)
	}
	var names []string
	if pattern := env.Params.String("list_pattern"); pattern != "" {
		list, err := s.Client.List("", pattern, nil).Collect()
		if err != nil {
			return fmt.Errorf("%s: list %q: %w", where, pattern, imapCtxErr(ctx, s, err))
		}
		for _, l := range list {
			names = append(names, l.Mailbox)
		}
		slices.Sort(names)
	}
	env.SetVar("FolderMessages", num(st.NumMessages))
	env.SetVar("FolderUnseen", num(st.NumUnseen))
	env.SetVar("FolderUIDNext", strconv.FormatUint(uint64(st.UIDNext), 10))
	env.SetVar("FolderUIDValidity", strconv.FormatUint(uint64(st.UIDValidity), 10))
	env.SetVar("FolderSize", size)
	env.SetVar("FolderList", strings.Join(names, "\n"))
	msg := fmt.Sprintf("folder %q: %s messages, %s unseen, UIDNEXT %d, UIDVALIDITY %d", folder, num(st.NumMessages), num(st.NumUnseen), st.UIDNext, st.UIDValidity)
	if size != "" {
		msg += ", " + size + " bytes"
	}
	if names != nil {
		msg += fmt.Sprintf(", %d folders listed", len(names))
	}
	env.Logger().Info(msg, "connection", s.Name)
	return nil
}
