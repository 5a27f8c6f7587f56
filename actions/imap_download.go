package actions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// IMAPDownload is "IMAP Download Message": it saves one message, byte for byte as the server
// holds it, as an .eml file.
type IMAPDownload struct{}

// NewIMAPDownload returns the IMAP Download Message action.
func NewIMAPDownload() Action { return IMAPDownload{} }

// Schema implements Action.
func (IMAPDownload) Schema() Schema {
	return Schema{
		ID: "imap.download", Title: "IMAP Download Message", Group: "IMAP", Sessions: "imap",
		Help: "Saves a message of the selected folder as a file (RFC 5322, exactly the bytes the server holds). " +
			"It streams the message to disk and never marks it as read. The file appears only once it is complete.",
		Params: []Param{
			ConnectionParam("imap"), imapFlagsUIDParam(),
			{Name: "folder", Label: "Save to folder", Kind: KindFolder, Required: true, Help: "Local folder the file is saved in; created if missing."},
			{Name: "file_name", Label: "File name", Kind: KindText,
				Help: "Name of the file, e.g. {MessageUID} {MessageSubject}.eml; empty means <UID>.eml. Characters a file name cannot hold become _."},
			CollisionParam(),
		},
		Outputs: []Output{
			{Name: "DownloadedFile", Help: "Full path of the saved file (the existing file when the collision rule is skip)."},
			{Name: "DownloadedSize", Help: "Bytes written (0 when skipped)."},
		},
	}
}

// Run implements Action.
func (IMAPDownload) Run(ctx context.Context, env *Env) error {
	t, err := imapMsgsTarget(env)
	if err != nil {
		return err
	}
	s, uid, mailbox := t.s, t.uid, t.mailbox
	fallback := strconv.FormatUint(uint64(uid), 10) + ".eml"
	name := SanitizeFileName(env.Params.String("file_name"), fallback)
	var body io.ReadCloser
	if cur := env.Sessions.Current(); env.Params.String("uid") == "" && cur != nil && cur.Open != nil {
		body, err = cur.Open(ctx) // the loop's message: served from its prefetch when it has it
	} else {
		body, err = imapMsgsOpenBody(ctx, s, mailbox, uid)
	}
	if err != nil {
		return err
	}
	defer body.Close()
	saved, err := SaveStream(ctx, env.Params.String("folder"), name, env.Params.String("collision"), body)
	if err != nil {
		return fmt.Errorf("download UID %d from %q: %w", uid, mailbox, err)
	}
	if err := body.Close(); err != nil {
		return err
	}
	env.SetVar("DownloadedFile", saved.Path)
	env.SetVar("DownloadedSize", strconv.FormatInt(saved.Size, 10))
	if saved.Skipped {
		env.Logger().Info("imap download skipped: the file exists", "folder", mailbox, "uid", uid, "file", saved.Path)
	} else {
		env.Logger().Info("imap message downloaded", "folder", mailbox, "uid", uid, "file", saved.Path, "bytes", saved.Size)
	}
	return nil
}

// imapMsgTarget is the message a message step works on.
type imapMsgTarget struct {
	s        *IMAPSession
	uid      imap.UID
	mailbox  string // the session's selected folder
	readOnly bool   // selected read-only (EXAMINE)
}

// imapMsgsTarget returns the message a message step works on: its "uid" parameter, or
// else the IMAP Mail Loop's current message, in the session's selected folder.
func imapMsgsTarget(env *Env) (imapMsgTarget, error) {
	s, uid, err := imapMsgsTargetUID(env)
	if err != nil {
		return imapMsgTarget{}, err
	}
	mailbox, readOnly, _, err := s.Selected()
	if err != nil {
		return imapMsgTarget{}, err
	}
	return imapMsgTarget{s: s, uid: uid, mailbox: mailbox, readOnly: readOnly}, nil
}

// imapMsgsTargetUID returns the session and the message UID of imapMsgsTarget.
func imapMsgsTargetUID(env *Env) (*IMAPSession, imap.UID, error) {
	s, err := IMAPFor(env)
	if err != nil {
		return nil, 0, err
	}
	if raw := env.Params.String("uid"); raw != "" {
		n, err := strconv.ParseUint(raw, 10, 32)
		if err != nil || n == 0 {
			return nil, 0, fmt.Errorf("%q %s is not a message UID (a whole number from 1)", "UID", raw)
		}
		return s, imap.UID(n), nil
	}
	conn := env.Params.String("connection")
	if conn == "" {
		conn = DefaultIMAPConnection
	}
	cur := env.Sessions.Current()
	if cur == nil || cur.Protocol != "imap" || cur.UID == 0 {
		return nil, 0, fmt.Errorf("no UID given and no IMAP message is current: set \"UID\", or put this step inside an \"IMAP Mail Loop\"")
	}
	if cur.Session != conn {
		return nil, 0, fmt.Errorf("the IMAP Mail Loop's message belongs to connection %q but this step uses %q: set \"Connection name\" to %q or give a UID", cur.Session, conn, cur.Session)
	}
	return s, imap.UID(cur.UID), nil
}

// imapMsgsErr wraps a failed IMAP command for the user; a cancelled run says so, and so
// does a connection the stall guard closed.
func imapMsgsErr(ctx context.Context, s *IMAPSession, what string, err error) error {
	if serr := s.stallErr(); serr != nil {
		return fmt.Errorf("imap %s on %s: %w", what, s.Server, serr)
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("imap %s on %s: cancelled: %w", what, s.Server, cerr)
	}
	return fmt.Errorf("imap %s on %s: %w", what, s.Server, err)
}

// imapMsgsGone is the error for a UID the folder does not hold (any more).
func imapMsgsGone(s *IMAPSession, mailbox string, uid imap.UID) error {
	return fmt.Errorf("imap: folder %q on %s has no message with UID %d (another client may have moved or deleted it; UIDs belong to one folder)", mailbox, s.Server, uid)
}

// imapMsgsFind returns the fetched data of uid, or nil.
func imapMsgsFind(msgs []*imapclient.FetchMessageBuffer, uid imap.UID) *imapclient.FetchMessageBuffer {
	for _, m := range msgs {
		if m.UID == uid {
			return m
		}
	}
	return nil
}

// imapMsgsBody streams one message (UID FETCH BODY.PEEK[]) straight from the connection.
// Read returns io.EOF only after the whole literal arrived, its length matched the
// server's RFC822.SIZE and the command completed; anything else is an error, so a
// truncated message is never mistaken for a complete one. Close must be called; it
// drains what was not read, so the connection stays usable.
type imapMsgsBody struct {
	s       *IMAPSession
	mailbox string
	uid     imap.UID
	ctx     context.Context
	stop    func() // ends the Watch
	cmd     *imapclient.FetchCommand
	msg     *imapclient.FetchMessageData
	lit     imap.LiteralReader
	n       int64 // bytes read so far
	size    int64 // RFC822.SIZE, -1 when the server did not say
	err     error // sticky: io.EOF after success
	broken  bool  // the literal failed half-way: the connection is unusable
	once    sync.Once
	closeEr error
}

// imapMsgsOpenBody starts streaming message uid of the selected mailbox. It never sets \Seen.
func imapMsgsOpenBody(ctx context.Context, s *IMAPSession, mailbox string, uid imap.UID) (*imapMsgsBody, error) {
	if cur, _, _, err := s.Selected(); err != nil {
		return nil, err
	} else if cur != mailbox {
		return nil, fmt.Errorf("imap: connection %q now has folder %q selected, not %q where UID %d is: do not select another folder inside the loop", s.Name, cur, mailbox, uid)
	}
	b := &imapMsgsBody{s: s, mailbox: mailbox, uid: uid, ctx: ctx, size: -1, stop: s.Watch(ctx)}
	b.cmd = s.Client.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	b.msg = b.cmd.Next()
	if b.msg == nil {
		err := b.cmd.Close()
		b.stop()
		if err != nil {
			return nil, imapMsgsErr(ctx, s, fmt.Sprintf("fetch UID %d from %q", uid, mailbox), err)
		}
		return nil, imapMsgsGone(s, mailbox, uid)
	}
	for {
		switch it := b.msg.Next().(type) {
		case nil:
			err := b.cmd.Close()
			b.stop()
			if err != nil {
				return nil, imapMsgsErr(ctx, s, fmt.Sprintf("fetch UID %d from %q", uid, mailbox), err)
			}
			return nil, fmt.Errorf("imap fetch UID %d from %q on %s: the server sent no message content", uid, mailbox, s.Server)
		case imapclient.FetchItemDataRFC822Size:
			b.size = it.Size
		case imapclient.FetchItemDataBodySection:
			if it.Literal == nil {
				b.Close()
				return nil, fmt.Errorf("imap fetch UID %d from %q on %s: the server sent NIL instead of the message", uid, mailbox, s.Server)
			}
			b.lit = it.Literal
			return b, nil
		}
	}
}

// Size is the message size the server announced (the literal's length).
func (b *imapMsgsBody) Size() int64 { return b.lit.Size() }

// Read implements io.Reader.
func (b *imapMsgsBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.lit.Read(p)
	b.n += int64(n)
	what := fmt.Sprintf("fetch UID %d from %q", b.uid, b.mailbox)
	switch {
	case err == io.EOF && b.n == b.lit.Size():
		err = b.finish()
	case err == io.EOF:
		b.broken = true
		b.Close()
		err = imapMsgsErr(b.ctx, b.s, what, fmt.Errorf("message truncated: %d of %d bytes arrived before the connection ended", b.n, b.lit.Size()))
	case err != nil:
		b.broken = true
		b.Close()
		err = imapMsgsErr(b.ctx, b.s, what, err)
	}
	b.err = err
	return n, err
}

// finish reads the rest of the response and checks the length; io.EOF means all is well.
func (b *imapMsgsBody) finish() error {
	what := fmt.Sprintf("fetch UID %d from %q", b.uid, b.mailbox)
	for it := b.msg.Next(); it != nil; it = b.msg.Next() {
		if sz, ok := it.(imapclient.FetchItemDataRFC822Size); ok {
			b.size = sz.Size
		}
	}
	if err := b.Close(); err != nil {
		return err
	}
	if b.size >= 0 && b.size != b.n {
		return fmt.Errorf("imap %s on %s: message truncated: the server announced %d bytes (RFC822.SIZE) but sent %d", what, b.s.Server, b.size, b.n)
	}
	return io.EOF
}

// Close ends the FETCH (reading what was not read) and the cancel watch. After the
// literal failed half-way the connection has lost its place in the protocol: it is closed
// instead, and not read again (go-imap's reader goroutine owns it by then).
func (b *imapMsgsBody) Close() error {
	b.once.Do(func() {
		if b.broken {
			b.stop()
			_ = b.s.Client.Close()
			if b.err == nil {
				b.err = errors.New("imap message reader closed")
			}
			return
		}
		err := b.cmd.Close()
		b.stop()
		if err != nil {
			b.closeEr = imapMsgsErr(b.ctx, b.s, fmt.Sprintf("fetch UID %d from %q", b.uid, b.mailbox), err)
		}
		if b.err == nil {
			b.err = errors.New("imap message reader closed")
		}
	})
	return b.closeEr
}
