package actions

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/mailwright/mailwright/internal/testmail"
)

// TestIMAPSelect: SELECT and EXAMINE set the session's selected folder and the outputs; a
// read-only folder refuses changes; a missing folder is explained with near matches or
// created on request.
func TestIMAPSelect(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	user := testmail.DefaultUser().Name
	dc.SeedN(t, user, "INBOX", 3, 800)
	dc.SeedN(t, user, "Archive", 2, 800)
	dc.Seed(t, user, "Archive/2024")
	te := newTestEnv(t)
	s := imapTestOpen(t, te, imapTestPasswordParams(dc, dc.IMAPSPort, "tls"))

	te.mustRun(NewIMAPSelect(), map[string]string{})
	mbox, ro, uv, err := s.Selected()
	if err != nil || mbox != "INBOX" || ro || uv == 0 {
		t.Fatalf("selected %q read-only=%v uidvalidity=%d: %v", mbox, ro, uv, err)
	}
	for name, want := range map[string]string{"FolderMessages": "3", "FolderUnseen": "3", "FolderUIDNext": "4", "FolderUIDValidity": strconv.FormatUint(uint64(uv), 10)} {
		if got := te.Var(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	// Read-write: a flag can be set.
	if err := s.Client.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true}, nil).Close(); err != nil {
		t.Fatalf("store in a selected folder: %v", err)
	}
	if f := dc.Messages(t, user, "INBOX")[0].Flags; f != "F" {
		t.Fatalf("INBOX message 1 flags %q, want F", f)
	}

	// EXAMINE: read-only, changes refused, nothing changed on disk.
	te.mustRun(NewIMAPSelect(), map[string]string{"folder": "Archive", "read_only": "true"})
	if mbox, ro, _, _ := s.Selected(); mbox != "Archive" || !ro {
		t.Fatalf("selected %q read-only=%v", mbox, ro)
	}
	if te.Var("FolderMessages") != "2" || te.Var("FolderUIDNext") != "3" {
		t.Fatalf("Archive: %s messages, UIDNEXT %s", te.Var("FolderMessages"), te.Var("FolderUIDNext"))
	}
	// Dovecot answers "OK Store ignored with read-only mailbox"; others say NO. Either way
	// nothing may change.
	_ = s.Client.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true}, nil).Close()
	for _, m := range dc.Messages(t, user, "Archive") {
		if m.Flags != "" {
			t.Fatalf("Archive message changed: flags %q", m.Flags)
		}
	}

	// Missing folder: near matches, the selection is left as it was.
	err = te.run(context.Background(), NewIMAPSelect(), map[string]string{"folder": "archive"})
	if !errors.Is(err, errIMAPNoFolder) || !strings.Contains(err.Error(), `did you mean "Archive"`) || !strings.Contains(err.Error(), `imap select "archive" on `+s.Server) {
		t.Fatalf("select of a missing folder: %v", err)
	}
	if mbox, _, _, _ := s.Selected(); mbox != "Archive" {
		t.Fatalf("a failed select changed the selection to %q", mbox)
	}
	err = te.run(context.Background(), NewIMAPSelect(), map[string]string{"folder": "Nowhere"})
	if !errors.Is(err, errIMAPNoFolder) || !strings.Contains(err.Error(), `"Archive/2024"`) {
		t.Fatalf("select of an unknown folder should list the folders: %v", err)
	}

	// create_if_missing creates it.
	te.mustRun(NewIMAPSelect(), map[string]string{"folder": "Projects/New", "create_if_missing": "true"})
	if mbox, _, _, _ := s.Selected(); mbox != "Projects/New" || te.Var("FolderMessages") != "0" {
		t.Fatalf("created folder: selected %q with %s messages", mbox, te.Var("FolderMessages"))
	}
	if list, err := s.Client.List("", "Projects/New", nil).Collect(); err != nil || len(list) != 1 {
		t.Fatalf("the folder was not created: %v %v", list, err)
	}

	// Non-ASCII names round-trip (modified UTF-7 on the wire).
	te.mustRun(NewIMAPSelect(), map[string]string{"folder": "Entwürfe", "create_if_missing": "true"})
	te.mustRun(NewIMAPFolderInfo(), map[string]string{"folder": "Entwürfe", "list_pattern": "Entw*"})
	if te.Var("FolderList") != "Entwürfe" || te.Var("FolderMessages") != "0" {
		t.Fatalf("non-ASCII folder: list %q, %s messages", te.Var("FolderList"), te.Var("FolderMessages"))
	}

	// INBOX is case-insensitive.
	te.mustRun(NewIMAPSelect(), map[string]string{"folder": "inbox"})
	if mbox, _, _, _ := s.Selected(); mbox != "INBOX" || te.Var("FolderMessages") != "3" || te.Var("FolderUnseen") != "3" {
		t.Fatalf("inbox: %s messages, %s unseen", te.Var("FolderMessages"), te.Var("FolderUnseen"))
	}
}

// TestIMAPCloseThenUse: after IMAP Close the name is gone, later steps say what to add, and
// closing again is an error unless ignore_missing.
func TestIMAPCloseThenUse(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	te := newTestEnv(t)
	p := imapTestPasswordParams(dc, dc.IMAPSPort, "tls")
	p["connection"] = "work"
	s := imapTestOpen(t, te, p)
	te.mustRun(NewIMAPClose(), map[string]string{"connection": "work"})
	if err := s.Client.Noop().Wait(); err == nil {
		t.Fatal("the connection still answers after IMAP Close")
	}
	err := te.run(context.Background(), NewIMAPSelect(), map[string]string{"connection": "work"})
	if err == nil || !strings.Contains(err.Error(), `no open IMAP connection named "work"`) || !strings.Contains(err.Error(), "IMAP Open") {
		t.Fatalf("select after close: %v", err)
	}
	err = te.run(context.Background(), NewIMAPClose(), map[string]string{"connection": "work"})
	if err == nil || !strings.Contains(err.Error(), `"work"`) {
		t.Fatalf("second close: %v", err)
	}
	te.mustRun(NewIMAPClose(), map[string]string{"connection": "work", "ignore_missing": "true"})
}

// TestIMAPCancelMidCommand: a step whose server stops answering returns promptly when the
// run is cancelled, and the session is then unusable rather than stuck.
func TestIMAPCancelMidCommand(t *testing.T) {
	dc := testmail.StartDovecot(t, testmail.DovecotOptions{})
	proxy := startIMAPTestProxy(t, dc.Addr(dc.IMAPSPort))
	host, port := proxy.Addr()
	te := newTestEnv(t)
	p := imapTestPasswordParams(dc, port, "tls")
	p["host"] = host
	s := imapTestOpen(t, te, p)

	for _, a := range []Action{NewIMAPSelect(), NewIMAPFolderInfo()} {
		proxy.stalled.Store(true)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		began := time.Now()
		err := te.run(ctx, a, map[string]string{})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("%s: want context.Canceled, got %v", a.Schema().ID, err)
		}
		if took := time.Since(began); took > 2*time.Second {
			t.Fatalf("%s: cancel took %s", a.Schema().ID, took)
		}
		if err := s.Client.Noop().Wait(); err == nil {
			t.Fatal("the session still works after a cancelled command")
		}
		// A fresh connection for the next action.
		proxy.stalled.Store(false)
		s = imapTestOpen(t, te, p)
	}
}
