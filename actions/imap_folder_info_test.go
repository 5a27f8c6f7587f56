package actions

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/mailwright/mailwright/internal/testmail"
)

// TestIMAPFolderInfo: STATUS values match what was seeded (one message marked seen), the
// size is the sum of the message sizes, listing follows the pattern, and the selected
// folder stays selected.
func TestIMAPFolderInfo(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	inbox := dc.SeedN(t, user, "INBOX", 4, 1500)
	dc.SeedN(t, user, "Archive", 1, 700)
	dc.Seed(t, user, "Archive/2024")
	dc.Seed(t, user, "Archive/2025")
	te := newTestEnv(t)
	s := imapTestOpen(t, te, imapTestPasswordParams(dc, dc.IMAPSPort, "tls"))

	te.mustRun(NewIMAPSelect(), map[string]string{})
	uv := te.Var("FolderUIDValidity")
	if err := s.Client.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, m := range inbox {
		size += len(m)
	}

	te.mustRun(NewIMAPFolderInfo(), map[string]string{"list_pattern": "*"})
	want := map[string]string{
		"FolderMessages": "4", "FolderUnseen": "3", "FolderUIDNext": "5", "FolderUIDValidity": uv,
		"FolderSize": strconv.Itoa(size), "FolderList": "Archive\nArchive/2024\nArchive/2025\nINBOX",
	}
	for name, w := range want {
		if got := te.Var(name); got != w {
			t.Errorf("%s = %q, want %q", name, got, w)
		}
	}

	te.mustRun(NewIMAPFolderInfo(), map[string]string{"folder": "Archive", "list_pattern": "Archive/%"})
	if te.Var("FolderMessages") != "1" || te.Var("FolderUnseen") != "1" || te.Var("FolderSize") != "700" || te.Var("FolderList") != "Archive/2024\nArchive/2025" {
		t.Fatalf("Archive: messages %s unseen %s size %s list %q", te.Var("FolderMessages"), te.Var("FolderUnseen"), te.Var("FolderSize"), te.Var("FolderList"))
	}
	te.mustRun(NewIMAPFolderInfo(), map[string]string{"folder": "Inbox"})
	if te.Var("FolderMessages") != "4" || te.Var("FolderUnseen") != "3" {
		t.Fatalf("Inbox: messages %s unseen %s", te.Var("FolderMessages"), te.Var("FolderUnseen"))
	}
	te.mustRun(NewIMAPFolderInfo(), map[string]string{"folder": "Archive/2024"})
	if te.Var("FolderMessages") != "0" || te.Var("FolderList") != "" {
		t.Fatalf("Archive/2024: messages %s, list %q (no pattern: empty)", te.Var("FolderMessages"), te.Var("FolderList"))
	}
	if mbox, _, _, _ := s.Selected(); mbox != "INBOX" || s.Client.Mailbox() == nil || s.Client.Mailbox().Name != "INBOX" {
		t.Fatalf("folder info changed the selection: %q", mbox)
	}

	err := te.run(context.Background(), NewIMAPFolderInfo(), map[string]string{"folder": "Archive/2023"})
	if !errors.Is(err, errIMAPNoFolder) || !strings.Contains(err.Error(), `did you mean "Archive/2024" or "Archive/2025" or "Archive"?`) {
		t.Fatalf("missing folder: %v", err)
	}
}
