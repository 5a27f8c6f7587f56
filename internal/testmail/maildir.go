package testmail

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StoredMessage is one message file of a Maildir folder, as Messages reads it back.
type StoredMessage struct {
	File  string // absolute path of the file, in new/ or cur/
	Flags string // Maildir info flags after ":2,", e.g. "S" or "ST"; "" while in new/
	Body  []byte // the file's bytes: the message as IMAP BODY[] and POP3 RETR return it
}

// Seed delivers msgs to user's folder by writing Maildir files directly (no IMAP), in
// order: the first message gets the lowest UID. folder is "INBOX" or any other mailbox
// name with "/" as the hierarchy separator ("Archive/2024"); it is created if missing and
// need not be subscribed. Messages should use CRLF line endings to come back from IMAP and
// POP3 byte for byte. Seeding while Dovecot runs is fine: it notices new files in new/ at
// the next sync (any command that syncs, or at once in IDLE). Seed with no messages just
// creates the folder.
func (d *Dovecot) Seed(t testing.TB, user, folder string, msgs ...[]byte) {
	t.Helper()
	d.seedMu.Lock()
	defer d.seedMu.Unlock()
	if err := d.seedLocked(user, folder, msgs); err != nil {
		t.Fatalf("testmail: Seed %s %q: %v", user, folder, d.explain(err))
	}
}

// SeedN generates n distinct messages of about size bytes with MessageText, seeds them
// like Seed and returns them in order. Numbering continues after the messages already in
// the folder, so a fresh folder gets "Test message 1" … "Test message n" as UIDs 1 … n,
// and a second SeedN never repeats a Message-ID.
func (d *Dovecot) SeedN(t testing.TB, user, folder string, n, size int) [][]byte {
	t.Helper()
	d.seedMu.Lock()
	defer d.seedMu.Unlock()
	dir, err := d.folderDir(user, folder)
	if err != nil {
		t.Fatalf("testmail: SeedN: %v", err)
	}
	have, err := countMessages(dir)
	if err != nil {
		t.Fatalf("testmail: SeedN %s %q: %v", user, folder, err)
	}
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = MessageText(have+i+1, size)
	}
	if err := d.seedLocked(user, folder, msgs); err != nil {
		t.Fatalf("testmail: SeedN %s %q: %v", user, folder, d.explain(err))
	}
	return msgs
}

// explain adds a hint to an error from a full /dev/shm, where the mail lives if it can.
func (d *Dovecot) explain(err error) error {
	if strings.HasPrefix(d.dir, "/dev/shm/") && strings.Contains(err.Error(), "no space left on device") {
		return fmt.Errorf("%w (the mail lives in /dev/shm, which is full; Docker gives containers 64 MB unless run with --shm-size)", err)
	}
	return err
}

// Messages reads back the message files of user's folder (new/ and cur/) in delivery
// order, which is UID order. A folder that does not exist has no messages.
func (d *Dovecot) Messages(t testing.TB, user, folder string) []StoredMessage {
	t.Helper()
	dir, err := d.folderDir(user, folder)
	if err != nil {
		t.Fatalf("testmail: Messages: %v", err)
	}
	for attempt := 1; ; attempt++ {
		msgs, err := readMaildir(dir)
		if err == nil {
			return msgs
		}
		// Dovecot renames files (new/ to cur/, flag changes) while we read: read again.
		if !errors.Is(err, fs.ErrNotExist) || attempt == 20 {
			t.Fatalf("testmail: Messages %s %q: %v", user, folder, err)
		}
	}
}

// MessageText returns message number i of about size bytes (exactly size when size is
// larger than the headers): a valid RFC 5322 text/plain message with CRLF line endings,
// Subject "Test message <i>", Message-ID <test-message-<i>.<size>@mailwright.test> and a
// Date i minutes after 2024-01-01 00:00 UTC. The same i and size give the same bytes.
func MessageText(i, size int) []byte {
	var b strings.Builder
	date := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	fmt.Fprintf(&b, "Message-ID: <test-message-%d.%d@mailwright.test>\r\n", i, size)
	fmt.Fprintf(&b, "Date: %s\r\n", date.Format(time.RFC1123Z))
	b.WriteString("From: Mailwright Sender <sender@example.test>\r\n")
	b.WriteString("To: Mailwright Recipient <recipient@example.test>\r\n")
	fmt.Fprintf(&b, "Subject: Test message %d\r\n", i)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n")
	fmt.Fprintf(&b, "This is test message %d.\r\n", i)
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	for line := 0; ; line++ {
		rest := size - b.Len()
		if rest == 2 {
			b.WriteString("\r\n")
		}
		if rest < 3 {
			break
		}
		n := min(76, rest-2)
		if left := rest - n - 2; left > 0 && left < 3 {
			n -= 3 // leave room for one more line of at least one character
		}
		start := (i*7 + line) % len(alphabet)
		for k := range n {
			b.WriteByte(alphabet[(start+k)%len(alphabet)])
		}
		b.WriteString("\r\n")
	}
	return []byte(b.String())
}

// seedLocked writes msgs into tmp/, then renames them into new/ in order. All but the last
// are renamed under Dovecot's own uidlist lock, so a sync running meanwhile (IDLE reacts at
// once) cannot see a later file without an earlier one and number them out of order; the
// last rename, after unlocking, makes sure a sync that gave up on the lock runs again.
// Names follow Dovecot's convention <secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>,W=<vsize>
// with strictly increasing time stamps (Dovecot sorts new files by them), and the sizes
// spare Dovecot reading the files to learn them.
func (d *Dovecot) seedLocked(user, folder string, msgs [][]byte) error {
	dir, err := d.folderDir(user, folder)
	if err != nil {
		return err
	}
	if err := d.makeMaildir(dir); err != nil {
		return err
	}
	names := make([]string, len(msgs))
	for i, m := range msgs {
		names[i] = d.nextName(m)
		if err := d.writeOwned(filepath.Join(dir, "tmp", names[i]), m); err != nil {
			return err
		}
	}
	deliver := func(name string) error {
		if err := os.Rename(filepath.Join(dir, "tmp", name), filepath.Join(dir, "new", name)); err != nil {
			return fmt.Errorf("deliver: %w", err)
		}
		return nil
	}
	if len(names) > 1 {
		unlock, err := lockUIDList(dir)
		if err != nil {
			return err
		}
		for _, name := range names[:len(names)-1] {
			if err := deliver(name); err != nil {
				_ = unlock()
				return err
			}
		}
		if err := unlock(); err != nil {
			return err
		}
	}
	if len(names) > 0 {
		return deliver(names[len(names)-1])
	}
	return nil
}

// nextName returns a unique Maildir file name for m, later in delivery order than any
// name before it. The caller holds seedMu.
func (d *Dovecot) nextName(m []byte) string {
	stamp := time.Now().Truncate(time.Microsecond)
	if !stamp.After(d.lastStamp) {
		stamp = d.lastStamp.Add(time.Microsecond)
	}
	d.lastStamp = stamp
	d.seq++
	return fmt.Sprintf("%d.M%dP%dQ%d.mailwright,S=%d,W=%d",
		stamp.Unix(), stamp.Nanosecond()/1000, os.Getpid(), d.seq, len(m), virtualSize(m))
}

// virtualSize is the size with every bare LF counted as CRLF, as IMAP and POP3 report it.
func virtualSize(m []byte) int {
	n := len(m)
	for i, c := range m {
		if c == '\n' && (i == 0 || m[i-1] != '\r') {
			n++
		}
	}
	return n
}

// lockUIDList takes Dovecot's dotlock on the folder's dovecot-uidlist, the lock Dovecot
// holds while it numbers new files. The content "pid:host" lets Dovecot see the lock as
// stale if this process dies. It returns the unlock function.
func lockUIDList(dir string) (func() error, error) {
	path := filepath.Join(dir, "dovecot-uidlist.lock")
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("lock uidlist: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			_, werr := fmt.Fprintf(f, "%d:%s", os.Getpid(), host)
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				_ = os.Remove(path)
				return nil, fmt.Errorf("lock uidlist: %w", werr)
			}
			return func() error {
				if err := os.Remove(path); err != nil {
					return fmt.Errorf("unlock uidlist: %w", err)
				}
				return nil
			}, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("lock uidlist: %w", err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("lock uidlist: %s held for 30 s", path)
		}
		time.Sleep(time.Millisecond) // poll interval while Dovecot's sync holds the lock
	}
}

// writeOwned creates a new file (mode 0600) with content, owned by the mail user.
func (d *Dovecot) writeOwned(path string, content []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write mail file: %w", err)
	}
	_, err = f.Write(content)
	if err == nil && d.id.Chown {
		err = f.Chown(d.id.UID, d.id.GID)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write mail file %s: %w", path, err)
	}
	return nil
}

// countMessages counts the message files of a folder (0 if it does not exist).
func countMessages(dir string) (int, error) {
	seen := map[string]bool{}
	for _, sub := range []string{"new", "cur"} { // new/ first: a file moving to cur/ is seen at least once
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("count messages: %w", err)
		}
		for _, e := range entries {
			if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				seen[maildirBase(e.Name())] = true
			}
		}
	}
	return len(seen), nil
}

// readMaildir reads a folder's messages, ordered by UID where dovecot-uidlist knows them,
// then by file name the way Dovecot orders new files.
func readMaildir(dir string) ([]StoredMessage, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	uids := readUIDList(filepath.Join(dir, "dovecot-uidlist"))
	byBase := map[string]int{}
	var msgs []StoredMessage
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", sub, err)
		}
		for _, e := range entries {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			path := filepath.Join(dir, sub, e.Name())
			body, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("read message: %w", err)
			}
			m := StoredMessage{File: path, Body: body}
			if _, info, ok := strings.Cut(e.Name(), ":2,"); ok {
				m.Flags = info
			}
			base := maildirBase(e.Name())
			if i, dup := byBase[base]; dup { // moved from new/ to cur/ while we read
				msgs[i] = m
				continue
			}
			byBase[base] = len(msgs)
			msgs = append(msgs, m)
		}
	}
	slices.SortStableFunc(msgs, func(a, b StoredMessage) int {
		ua, oka := uids[maildirBase(filepath.Base(a.File))]
		ub, okb := uids[maildirBase(filepath.Base(b.File))]
		switch {
		case oka && okb:
			return int(ua) - int(ub)
		case oka != okb: // files Dovecot has not numbered yet come after those it has
			if oka {
				return -1
			}
			return 1
		}
		return compareMaildirNames(filepath.Base(a.File), filepath.Base(b.File))
	})
	return msgs, nil
}

// readUIDList maps file base names to UIDs from a dovecot-uidlist (version 3 lines
// "<uid> [fields] :<file name>"). A missing or unreadable list gives an empty map.
func readUIDList(path string) map[string]uint32 {
	uids := map[string]uint32{}
	f, err := os.Open(path)
	if err != nil {
		return uids
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20)
	for first := true; s.Scan(); first = false {
		if first {
			continue // header: version, UIDVALIDITY, next UID, GUID
		}
		head, name, ok := strings.Cut(s.Text(), " :")
		if !ok {
			continue
		}
		uidText, _, _ := strings.Cut(head, " ")
		if uid, err := strconv.ParseUint(uidText, 10, 32); err == nil {
			uids[maildirBase(name)] = uint32(uid)
		}
	}
	return uids
}

// maildirBase strips the ":2,<flags>" info from a Maildir file name.
func maildirBase(name string) string {
	base, _, _ := strings.Cut(name, ":")
	return base
}

// compareMaildirNames orders file names as Dovecot orders new files: by the seconds
// before the first dot, then the microseconds after "M", then the base name.
func compareMaildirNames(a, b string) int {
	sa, ua := maildirStamp(a)
	sb, ub := maildirStamp(b)
	if sa != sb {
		return int(sa - sb)
	}
	if ua >= 0 && ub >= 0 && ua != ub {
		return int(ua - ub)
	}
	return strings.Compare(maildirBase(a), maildirBase(b))
}

// maildirStamp parses "<secs>.<…M<usecs>…>.": usecs is -1 when absent.
func maildirStamp(name string) (secs, usecs int64) {
	i := 0
	for ; i < len(name) && name[i] >= '0' && name[i] <= '9'; i++ {
		secs = secs*10 + int64(name[i]-'0')
	}
	usecs = -1
	if i >= len(name) || name[i] != '.' {
		return secs, usecs
	}
	unique, _, _ := strings.Cut(name[i+1:], ".")
	if _, after, ok := strings.Cut(unique, "M"); ok {
		usecs = 0
		for j := 0; j < len(after) && after[j] >= '0' && after[j] <= '9'; j++ {
			usecs = usecs*10 + int64(after[j]-'0')
		}
	}
	return secs, usecs
}
