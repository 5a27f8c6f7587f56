package actions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// POP3Download is the "POP3 Download Email" action: it saves a message, byte for byte as
// the server holds it, as an .eml file.
type POP3Download struct{}

// NewPOP3Download returns the POP3 Download Email action.
func NewPOP3Download() Action { return POP3Download{} }

// Schema implements Action.
func (POP3Download) Schema() Schema {
	return Schema{
		ID:    "pop3.download",
		Title: "POP3 Download Email",
		Group: "POP3",
		Help: "Saves a message from the POP3 mailbox as an .eml file, exactly as the server holds it. The message is streamed to disk, so its size does not matter; " +
			"the file appears only once it is complete. The message stays on the server (use POP3 Delete Email to remove it).",
		Params: []Param{
			ConnectionParam("pop3"),
			{Name: "number", Label: "Message number", Kind: KindNumber,
				Help: "Number of the message in this connection (1 = oldest). Empty: the current message of the POP3 Mail Loop."},
			{Name: "folder", Label: "Folder", Kind: KindFolder, Required: true,
				Help: "Folder to save the file in; created if missing."},
			{Name: "file_name", Label: "File name", Kind: KindText,
				Help: "Name of the file, e.g. {MessageSubject}.eml. Empty: the message's UIDL with .eml. Characters not allowed in file names are replaced."},
			CollisionParam(),
		},
		Outputs: []Output{
			{Name: "DownloadedFile", Help: "Full path of the saved file (with skip: the existing file)."},
			{Name: "DownloadedSize", Help: "Bytes written (0 when skipped)."},
		},
		Sessions: "pop3",
	}
}

// Run implements Action.
func (POP3Download) Run(ctx context.Context, env *Env) error {
	s, err := POP3For(env)
	if err != nil {
		return err
	}
	tgt, err := pop3TargetOf(env, s)
	if err != nil {
		return err
	}
	defer s.Watch(ctx)()
	log := env.Logger()
	if !tgt.Loop {
		// The message need not exist in a loop: ask the server for its size and id.
		if tgt.Size, err = s.Client.ListOne(tgt.Number); err != nil {
			return pop3CtxErr(ctx, fmt.Errorf("pop3 LIST %d on %s: %w (check the message number)", tgt.Number, s.Server, err))
		}
		if tgt.UIDL, err = s.Client.UIDLOne(tgt.Number); err != nil {
			var perr *POP3Error
			if !errors.As(err, &perr) {
				return pop3CtxErr(ctx, err)
			}
			tgt.UIDL = ""
		}
	}
	fallback := "message-" + strconv.Itoa(tgt.Number) + ".eml"
	name := strings.TrimSpace(env.Params.String("file_name"))
	if name == "" && tgt.UIDL != "" {
		name = tgt.UIDL + ".eml"
	}
	name = SanitizeFileName(name, fallback)
	var r io.ReadCloser
	if cur := env.Sessions.Current(); tgt.Loop && cur != nil && cur.Open != nil {
		r, err = cur.Open(ctx) // the loop's message: served from its prefetch when it has it
	} else {
		r, err = s.Retr(ctx, tgt.Number)
	}
	if err != nil {
		return err
	}
	cr := &pop3CountReader{r: r, env: env, total: tgt.Size, what: "downloading message " + strconv.Itoa(tgt.Number)}
	saved, err := SaveStream(ctx, env.Params.String("folder"), name, env.Params.String("collision"), cr)
	if cerr := r.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return pop3CtxErr(ctx, fmt.Errorf("pop3 download of message %d from %s: %w", tgt.Number, s.Server, err))
	}
	if tgt.Size >= 0 && cr.n != tgt.Size {
		log.Warn("the message's size differs from the size the server announced (LIST); the file holds exactly the bytes the server sent",
			"number", tgt.Number, "received", cr.n, "announced", tgt.Size)
	}
	env.SetVar("DownloadedFile", saved.Path)
	env.SetVar("DownloadedSize", strconv.FormatInt(saved.Size, 10))
	if saved.Skipped {
		log.Info("pop3 download skipped: the file exists", "number", tgt.Number, "file", saved.Path)
		return nil
	}
	log.Info("pop3 message downloaded", "number", tgt.Number, "uidl", tgt.UIDL, "file", saved.Path, "bytes", saved.Size)
	return nil
}

// pop3CountReader counts the bytes read and reports progress every megabyte.
type pop3CountReader struct {
	r        io.Reader
	env      *Env
	n        int64
	total    int64
	reported int64
	what     string
}

func (c *pop3CountReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n-c.reported >= 1<<20 || (err == io.EOF && c.reported > 0) {
		c.reported = c.n
		c.env.ReportProgress(c.n, max(c.total, 0), c.what)
	}
	return n, err
}
