package actions

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// IMAPSelect is the "IMAP Select Mail Folder" action: it selects (or, read-only, examines)
// a folder, which the message steps that follow then work on.
type IMAPSelect struct{}

// NewIMAPSelect returns the IMAP Select Mail Folder action.
func NewIMAPSelect() Action { return IMAPSelect{} }

// Schema implements Action.
func (IMAPSelect) Schema() Schema {
	return Schema{
		ID:    "imap.select",
		Title: "IMAP Select Mail Folder",
		Group: "IMAP",
		Help: "Selects a folder of an open IMAP connection; the message steps that follow (loops, download, flags, move) work on it. " +
			"Read-only opens it with EXAMINE: nothing in it can be changed, and reading a message does not mark it as seen. " +
			"A folder that does not exist is an error that lists folders with similar names, unless \"Create if missing\" is set.",
		Params: []Param{
			ConnectionParam("imap"),
			{Name: "folder", Label: "Folder", Kind: KindText, Default: "INBOX",
				Help: "Folder name as the server shows it, with its hierarchy separator, e.g. INBOX, Archive/2024 or INBOX.Receipts."},
			{Name: "read_only", Label: "Read-only", Kind: KindBool, Default: "false",
				Help: "true: open with EXAMINE: the server refuses or ignores changes (flags, moves, deletes), and reading a message does not mark it as seen."},
			{Name: "create_if_missing", Label: "Create if missing", Kind: KindBool, Default: "false", Advanced: true,
				Help: "true: create the folder when it does not exist, then select it."},
		},
		Outputs: []Output{
			{Name: "FolderMessages", Help: "Number of messages in the folder."},
			{Name: "FolderUIDValidity", Help: "The folder's UIDVALIDITY; when it changes, UIDs remembered earlier no longer name the same messages."},
			{Name: "FolderUIDNext", Help: "The UID the next message added to the folder will get at the earliest."},
			{Name: "FolderUnseen", Help: "Number of messages without the \\Seen flag, as counted just before selecting."},
		},
		Sessions: "imap",
	}
}

// Run implements Action.
func (IMAPSelect) Run(ctx context.Context, env *Env) error {
	s, err := IMAPFor(env)
	if err != nil {
		return fmt.Errorf("imap select: %w", err)
	}
	folder := imapFolderName(env.Params.String("folder"))
	readOnly := env.Params.Bool("read_only")
	where := fmt.Sprintf("imap select %q on %s", folder, s.Server)
	stop := s.Watch(ctx)
	defer stop()

	// STATUS first: it counts unseen messages cheaply (SELECT reports only the first one)
	// and must not be used on the selected folder (RFC 9051 section 6.3.11).
	st, err := s.Client.Status(folder, &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true}).Wait()
	if err != nil {
		if err = imapFolderError(ctx, s, folder, err); !errors.Is(err, errIMAPNoFolder) || !env.Params.Bool("create_if_missing") {
			return fmt.Errorf("%s: %w", where, err)
		}
		if err := s.Client.Create(folder, nil).Wait(); err != nil {
			return fmt.Errorf("%s: create the folder: %w", where, imapCtxErr(ctx, s, err))
		}
		env.Logger().Info("created folder "+strconv.Quote(folder), "connection", s.Name)
		if st, err = s.Client.Status(folder, &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true}).Wait(); err != nil {
			return fmt.Errorf("%s: %w", where, imapCtxErr(ctx, s, err))
		}
	}

	if st.NumMessages == nil {
		return fmt.Errorf("%s: the server's STATUS answer did not name the folder", where)
	}

	sel, err := s.Client.Select(folder, &imap.SelectOptions{ReadOnly: readOnly}).Wait()
	if err != nil {
		// A failed SELECT leaves no folder selected (RFC 9051 section 6.3.2).
		s.SetSelected("", false, 0)
		return fmt.Errorf("%s: %w", where, imapCtxErr(ctx, s, err))
	}
	s.SetSelected(folder, readOnly, sel.UIDValidity)
	uidNext := sel.UIDNext
	if uidNext == 0 {
		uidNext = st.UIDNext
	}
	var unseen uint32
	if st.NumUnseen != nil {
		unseen = *st.NumUnseen
	}
	env.SetVar("FolderMessages", strconv.FormatUint(uint64(sel.NumMessages), 10))
	env.SetVar("FolderUIDValidity", strconv.FormatUint(uint64(sel.UIDValidity), 10))
	env.SetVar("FolderUIDNext", strconv.FormatUint(uint64(uidNext), 10))
	env.SetVar("FolderUnseen", strconv.FormatUint(uint64(unseen), 10))
	mode := "selected"
	if readOnly {
		mode = "examined (read-only)"
	}
	env.Logger().Info(fmt.Sprintf("%s folder %q: %d messages, %d unseen", mode, folder, sel.NumMessages, unseen), "connection", s.Name)
	return nil
}

// imapFolderName returns the folder parameter: INBOX when empty, and "INBOX" for any
// spelling of it, which IMAP treats case-insensitively (RFC 9051 section 5.1) while go-imap
// matches a STATUS answer to its command by the exact name.
func imapFolderName(folder string) string {
	if folder == "" || strings.EqualFold(folder, "INBOX") {
		return "INBOX"
	}
	return folder
}

// errIMAPNoFolder marks the error of a folder that does not exist.
var errIMAPNoFolder = errors.New("no such folder")

// imapFolderError explains a failed command on folder: when the folder does not exist the
// error wraps errIMAPNoFolder and suggests folders with similar names (from LIST "" "*");
// otherwise it is err itself (a folder that cannot be selected, no permission...).
func imapFolderError(ctx context.Context, s *IMAPSession, folder string, err error) error {
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) || imapErr.Type != imap.StatusResponseTypeNo {
		return imapCtxErr(ctx, s, err)
	}
	list, lerr := s.Client.List("", "*", nil).Collect()
	if lerr != nil {
		if imapErr.Code == imap.ResponseCodeNonExistent {
			return fmt.Errorf("%w (%v): check \"Folder\"", errIMAPNoFolder, err)
		}
		return imapCtxErr(ctx, s, err)
	}
	names := make([]string, 0, len(list))
	for _, l := range list {
		if l.Mailbox == folder || strings.EqualFold(l.Mailbox, "INBOX") && strings.EqualFold(folder, "INBOX") {
			return err // it exists: the server refused for another reason
		}
		names = append(names, l.Mailbox)
	}
	slices.Sort(names)
	near := imapNearFolders(names, folder)
	switch {
	case len(near) > 0:
		return fmt.Errorf("%w: did you mean %s? (check \"Folder\"; names are case-sensitive except INBOX)", errIMAPNoFolder, imapQuoteList(near, " or "))
	case len(names) <= 20:
		return fmt.Errorf("%w: the server has %s (check \"Folder\")", errIMAPNoFolder, imapQuoteList(names, ", "))
	default:
		return fmt.Errorf("%w among the server's %d folders (check \"Folder\"; IMAP Folder Info with \"List pattern\" * lists them)", errIMAPNoFolder, len(names))
	}
}

// imapNearFolders returns up to five names that resemble want, closest first: equal but
// for case, the same last path component, a few typing mistakes away, or one containing
// the other.
func imapNearFolders(names []string, want string) []string {
	lw := strings.ToLower(want)
	leaf := func(s string) string {
		if i := strings.LastIndexAny(s, "/."); i >= 0 {
			return s[i+1:]
		}
		return s
	}
	lleaf := leaf(lw)
	typos := max(1, len([]rune(lw))/5)
	var tiers [4][]string
	for _, n := range names {
		ln := strings.ToLower(n)
		switch {
		case ln == lw:
			tiers[0] = append(tiers[0], n)
		case lleaf != "" && leaf(ln) == lleaf:
			tiers[1] = append(tiers[1], n)
		case imapEditDistance(ln, lw, typos) <= typos:
			tiers[2] = append(tiers[2], n)
		case lw != "" && (strings.Contains(ln, lw) || len(ln) >= 3 && strings.Contains(lw, ln)):
			tiers[3] = append(tiers[3], n)
		}
	}
	out := slices.Concat(tiers[0], tiers[1], tiers[2], tiers[3])
	if len(out) > 5 {
		out = out[:5]
	}
	return out
}

// imapEditDistance is the Levenshtein distance of a and b (in runes), or limit+1 as soon as
// it is certain to exceed limit.
func imapEditDistance(a, b string, limit int) int {
	ra, rb := []rune(a), []rune(b)
	if d := len(ra) - len(rb); d > limit || -d > limit {
		return limit + 1
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		best := cur[0]
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			best = min(best, cur[j])
		}
		if best > limit {
			return limit + 1
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// imapQuoteList quotes each name and joins them with sep.
func imapQuoteList(names []string, sep string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, sep)
}
