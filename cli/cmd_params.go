package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailwright/mailwright/oauthparams"
)

// envPassphrase is the environment variable holding the passphrase of the secrets file on
// servers without a keyring.
const envPassphrase = "MAILWRIGHT_PASSPHRASE"

func paramsCommand() Command {
	return Command{
		Name:    "params",
		Summary: "OAuth parameter sets: list, show, set, sign in, tokens, test, import, export, rename, delete",
		Sub: []Command{
			paramsListCommand(), paramsShowCommand(), paramsPresetsCommand(), paramsSetCommand(),
			paramsAuthorizeCommand(), paramsTokenCommand(), paramsTestCommand(), paramsImportCommand(), paramsExportCommand(),
			paramsRenameCommand(), paramsDeleteCommand(),
		},
	}
}

// openStore opens the parameter-set store of the data folder, creating the folder.
func (c *Context) openStore() (*oauthparams.Store, error) {
	dd, err := c.DataDir()
	if err != nil {
		return nil, err
	}
	if err := ensureDataDir(dd.Path); err != nil {
		return nil, err
	}
	return oauthparams.Open(dd.Path, oauthparams.StoreOptions{Passphrase: c.Env.Getenv(envPassphrase)})
}

// jsonFlag registers --json on the command's flags.
func jsonFlag(c *Context) *bool {
	return c.Flags.Bool("json", false, "print JSON instead of text")
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// setSummary is one row of `params list --json`.
type setSummary struct {
	Name        string    `json:"name"`
	Account     string    `json:"account,omitempty"`
	Preset      string    `json:"preset,omitempty"`
	State       string    `json:"state"`
	Reason      string    `json:"reason,omitempty"`
	LastRefresh time.Time `json:"last_refresh,omitzero"`
}

func paramsListCommand() Command {
	var asJSON *bool
	return Command{
		Name:    "list",
		Summary: "list the parameter sets with their status and the secret storage in use",
		Flags:   func(c *Context) { asJSON = jsonFlag(c) },
		Run: func(c *Context) error {
			s, err := c.openStore()
			if err != nil {
				return err
			}
			sets, err := s.List()
			if err != nil {
				return err
			}
			// List carries no secrets; the status needs to know whether a refresh token exists.
			rows := make([]setSummary, 0, len(sets))
			for _, p := range sets {
				if full, err := s.Get(p.Name); err == nil {
					p = full
				}
				st := p.Status(time.Now())
				rows = append(rows, setSummary{p.Name, p.Account, p.Preset, string(st.State), st.Reason, p.LastRefresh})
			}
			b := s.Backend()
			if *asJSON {
				return writeJSON(c.Env.Stdout, map[string]any{"secret_storage": b, "sets": rows})
			}
			w := tabwriter.NewWriter(c.Env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tACCOUNT\tPROVIDER\tSTATUS\tLAST REFRESH")
			for _, r := range rows {
				last := "never"
				if !r.LastRefresh.IsZero() {
					last = r.LastRefresh.Local().Format("2006-01-02 15:04")
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Name, dash(r.Account), dash(r.Preset), r.State, last)
			}
			w.Flush()
			fmt.Fprintf(c.Env.Stdout, "\nsecrets: %s (%s)\n", b.Name, b.Detail)
			return nil
		},
	}
}

func paramsShowCommand() Command {
	var asJSON *bool
	return Command{
		Name:    "show",
		Summary: "show one parameter set (secrets masked)",
		Usage:   "NAME",
		MinArgs: 1, MaxArgs: 1,
		Flags: func(c *Context) { asJSON = jsonFlag(c) },
		Run: func(c *Context) error {
			s, err := c.openStore()
			if err != nil {
				return err
			}
			p, err := s.Get(c.Args[0])
			if err != nil {
				return err
			}
			st := p.Status(time.Now())
			m := p.Masked()
			if *asJSON {
				return writeJSON(c.Env.Stdout, map[string]any{"set": m, "secrets": maskedSecrets(m.Secrets), "status": st})
			}
			w := tabwriter.NewWriter(c.Env.Stdout, 0, 4, 2, ' ', 0)
			rows := [][2]string{
				{"Record Name", m.Name}, {"Client Account", m.Account}, {"Client ID", m.ClientID},
				{"Client Secret", m.Secrets.ClientSecret}, {"Refresh Token", m.Secrets.RefreshToken},
				{"Authorization Endpoint", m.AuthURL}, {"Access Token Endpoint", m.TokenURL},
				{"Device Endpoint", m.DeviceURL}, {"Redirect URL", m.RedirectURL}, {"Scope", m.Scope},
				{"Extra Parameters", formatParams(m.ExtraParams)}, {"Preset", m.Preset},
				{"Granted Scope", m.GrantedScope}, {"Status", string(st.State) + reasonSuffix(st.Reason)},
				{"Last Error", m.LastError},
			}
			if !m.LastRefresh.IsZero() {
				rows = append(rows, [2]string{"Last Refresh", m.LastRefresh.Local().Format(time.RFC3339)})
			}
			for _, r := range rows {
				fmt.Fprintf(w, "%s:\t%s\n", r[0], dash(r[1]))
			}
			return w.Flush()
		},
	}
}

// maskedSecrets says which secrets are stored, for JSON output, without their values.
func maskedSecrets(s oauthparams.Secrets) map[string]string {
	return map[string]string{"client_secret": s.ClientSecret, "refresh_token": s.RefreshToken, "access_token": s.AccessToken}
}

func paramsPresetsCommand() Command {
	var asJSON *bool
	return Command{
		Name:    "presets",
		Summary: "list the provider presets (Load Predefined Endpoints)",
		Flags:   func(c *Context) { asJSON = jsonFlag(c) },
		Run: func(c *Context) error {
			presets := oauthparams.Presets()
			if *asJSON {
				return writeJSON(c.Env.Stdout, presets)
			}
			w := tabwriter.NewWriter(c.Env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tPROVIDER\tIMAP\tSMTP")
			for _, p := range presets {
				imap, smtp := p.Servers[oauthparams.ProtocolIMAP], p.Servers[oauthparams.ProtocolSMTP]
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", p.ID, p.Name, hostPort(imap.Host, imap.Port), hostPort(smtp.Host, smtp.Port))
			}
			return w.Flush()
		},
	}
}

func paramsRenameCommand() Command {
	return Command{
		Name:    "rename",
		Summary: "rename a parameter set (its secrets stay with it)",
		Usage:   "OLD NEW",
		MinArgs: 2, MaxArgs: 2,
		Run: func(c *Context) error {
			s, err := c.openStore()
			if err != nil {
				return err
			}
			if err := s.Rename(c.Args[0], c.Args[1]); err != nil {
				return err
			}
			fmt.Fprintf(c.Env.Stdout, "renamed %s to %s\n", c.Args[0], strings.TrimSpace(c.Args[1]))
			return nil
		},
	}
}

func paramsDeleteCommand() Command {
	return Command{
		Name:    "delete",
		Summary: "delete a parameter set and its secrets",
		Usage:   "NAME",
		MinArgs: 1, MaxArgs: 1,
		Run: func(c *Context) error {
			s, err := c.openStore()
			if err != nil {
				return err
			}
			if err := s.Delete(c.Args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.Env.Stdout, "deleted %s\n", c.Args[0])
			return nil
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return " (" + r + ")"
}

func hostPort(h string, p int) string {
	if h == "" {
		return "-"
	}
	return fmt.Sprintf("%s:%d", h, p)
}

func formatParams(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, " ")
}

// readSecretFile reads a secret from a file ("-" is standard input), trimming the line end,
// so secrets never stand on a command line (where `ps` and shell history see them).
func readSecretFile(path string) (string, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, 64<<10))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
