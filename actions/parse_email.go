package actions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// ParseEmail is the "Parse Email" action: it reads a message (an .eml file or the loop's
// current message) and sets variables for its addresses, subject, date, bodies, chosen
// headers and attachments, saving the attachments when asked. Broken mail never stops
// it: what can be read is read and the problems are listed in EmailWarnings.
type ParseEmail struct{}

// NewParseEmail returns the Parse Email action.
func NewParseEmail() Action { return ParseEmail{} }

// parseDefaultMaxBody is the default of max_body_bytes (10 MiB).
const parseDefaultMaxBody = 10 << 20

// parseOutputNames are the variables Parse Email always sets.
var parseOutputNames = []string{"EmailFrom", "EmailTo", "EmailCc", "EmailReplyTo", "EmailSubject", "EmailDate",
	"EmailMessageID", "EmailInReplyTo", "EmailReferences", "EmailTextBody", "EmailHTMLBody",
	"EmailAttachments", "EmailAttachmentNames", "EmailAttachmentCount", "EmailWarnings"}

// Schema implements Action.
func (ParseEmail) Schema() Schema {
	return Schema{
		ID:    "email.parse",
		Title: "Parse Email",
		Group: "Email",
		Help: "Reads an email message — an .eml file, or the message the surrounding mail loop is on — and sets " +
			"variables for its sender, recipients, subject, date, text and HTML bodies, chosen headers and " +
			"attachments. Attachments can be saved to a folder, with names made safe. Broken mail does not stop " +
			"the step: what can be read is read and every problem is listed in EmailWarnings.",
		Params: []Param{
			{Name: "file", Label: "File", Kind: KindFile,
				Help: "The .eml file to parse. Leave empty inside an IMAP or POP3 Mail Loop to parse the loop's current message."},
			{Name: "headers", Label: "Headers", Kind: KindText,
				Help: "Extra headers to read, separated by commas, e.g. \"X-Priority, List-Id\". Each sets EmailHeader_<Name> (non-letters and digits become _)."},
			{Name: "save_attachments", Label: "Save attachments", Kind: KindBool, Default: "false",
				Help: "Save the attachments into the attachments folder."},
			{Name: "attachments_folder", Label: "Attachments folder", Kind: KindFolder,
				Help: "Where attachments are saved (created if missing). Required when Save attachments is on."},
			CollisionParam(),
			{Name: "include_inline", Label: "Include inline files", Kind: KindBool, Default: "false",
				Help: "Also count and save inline parts that have a file name (such as images shown inside an HTML body)."},
			{Name: "max_body_bytes", Label: "Maximum body size (bytes)", Kind: KindNumber, Default: strconv.Itoa(parseDefaultMaxBody), Advanced: true,
				Help: "The text and HTML bodies are cut after this many bytes (with a warning). Attachments are not limited."},
		},
		Outputs: []Output{
			{Name: "EmailFrom", Help: "The From addresses as \"Name <address>\", comma-separated."},
			{Name: "EmailTo", Help: "The To addresses as \"Name <address>\", comma-separated."},
			{Name: "EmailCc", Help: "The Cc addresses as \"Name <address>\", comma-separated."},
			{Name: "EmailReplyTo", Help: "The Reply-To addresses as \"Name <address>\", comma-separated."},
			{Name: "EmailSubject", Help: "The subject, decoded."},
			{Name: "EmailDate", Help: "The Date header in RFC 3339 (2024-05-01T09:30:00+02:00); empty when missing or unreadable."},
			{Name: "EmailMessageID", Help: "The Message-ID header, e.g. <abc@example.com>."},
			{Name: "EmailInReplyTo", Help: "The In-Reply-To header."},
			{Name: "EmailReferences", Help: "The References header (message IDs separated by spaces)."},
			{Name: "EmailTextBody", Help: "The first text/plain body, decoded to UTF-8."},
			{Name: "EmailHTMLBody", Help: "The first text/html body, decoded to UTF-8."},
			{Name: "EmailHeader_<Name>", Help: "One per header listed under Headers: its decoded value (several values one per line)."},
			{Name: "EmailAttachments", Help: "The paths of the saved attachments, one per line."},
			{Name: "EmailAttachmentNames", Help: "The names of all attachments found, decoded, one per line."},
			{Name: "EmailAttachmentCount", Help: "How many attachments the message has."},
			{Name: "EmailWarnings", Help: "Problems found in the message, one per line; empty when it is clean."},
		},
	}
}

// Run implements Action.
func (a ParseEmail) Run(ctx context.Context, env *Env) error {
	v := env.Params
	opt := parseOptions{
		Save:          v.Bool("save_attachments"),
		Folder:        v.String("attachments_folder"),
		Collision:     v.String("collision"),
		IncludeInline: v.Bool("include_inline"),
		MaxBody:       parseDefaultMaxBody,
	}
	if _, ok := v["max_body_bytes"]; ok {
		opt.MaxBody = v.Int("max_body_bytes")
	}
	if opt.MaxBody < 0 {
		return fmt.Errorf("parse email: \"Maximum body size (bytes)\" is %d: use 0 or more", opt.MaxBody)
	}
	if opt.Save && opt.Folder == "" {
		return errors.New("parse email: \"Attachments folder\" is required when \"Save attachments\" is on")
	}
	headers := v.List("headers")
	for _, name := range parseOutputNames {
		env.SetVar(name, "")
	}
	for _, name := range headers {
		env.SetVar(parseHeaderVarName(name), "")
	}

	rc, what, size, err := parseOpen(ctx, env, v.String("file"))
	if err != nil {
		return err
	}
	defer rc.Close()
	log := env.Logger()
	log.Info("parsing email", "source", what, "bytes", size)
	src := &parseSource{ctx: ctx, r: rc, total: size, progress: env.Progress}
	opt.Headers = headers
	res, err := parseMessage(ctx, src, opt, log)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("parse email %s: %w", what, ctx.Err())
		}
		return fmt.Errorf("parse email %s: %w", what, err)
	}
	env.ReportProgress(src.n, size, "parsing email")

	for _, name := range parseOutputNames {
		env.SetVar(name, res.Vars[name])
	}
	for _, name := range headers {
		name = parseHeaderVarName(name)
		env.SetVar(name, res.Vars[name])
	}
	subject, warnings := res.Vars["EmailSubject"], len(res.Warnings)
	log.Info("parsed email", "source", what, "subject", subject, "attachments", len(res.Names),
		"saved", len(res.Paths), "warnings", warnings)
	return nil
}

// parseOpen opens the file, or the loop's current message when file is empty.
func parseOpen(ctx context.Context, env *Env, file string) (io.ReadCloser, string, int64, error) {
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, "", 0, fmt.Errorf("parse email: open %s: %w: check the file path", file, err)
		}
		var size int64
		if st, err := f.Stat(); err == nil {
			if st.IsDir() {
				f.Close()
				return nil, "", 0, fmt.Errorf("parse email: %s is a folder, not an .eml file", file)
			}
			size = st.Size()
		}
		return f, file, size, nil
	}
	var cm *CurrentMessage
	if env.Sessions != nil {
		cm = env.Sessions.Current()
	}
	if cm == nil || cm.Open == nil {
		return nil, "", 0, errors.New("parse email: no message to parse: set File to an .eml file, or put this step inside an IMAP or POP3 Mail Loop")
	}
	what := fmt.Sprintf("current %s message", strings.ToUpper(cm.Protocol))
	switch {
	case cm.UID != 0:
		what += fmt.Sprintf(" (UID %d)", cm.UID)
	case cm.UIDL != "":
		what += fmt.Sprintf(" (UIDL %s)", cm.UIDL)
	case cm.Number != 0:
		what += fmt.Sprintf(" (#%d)", cm.Number)
	}
	rc, err := cm.Open(ctx)
	if err != nil {
		return nil, "", 0, fmt.Errorf("parse email: open the %s: %w", what, err)
	}
	return rc, what, cm.Size, nil
}
