// Command imapbare is the go-imap baseline of the IMAP download benchmark (issue 7): the
// least a go-imap v2 client can do to save every message of a folder as a file. It
// connects with STARTTLS, logs in with a password, selects the folder read-only and sends
// one `UID FETCH 1:* (UID BODY.PEEK[])`, streaming each body into <out>/<UID>.eml (no fsync).
// Whatever Mailwright's IMAP Mail Loop + Download add on top of this is its own cost.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func main() {
	addr := flag.String("addr", "localhost:143", "IMAP server host:port (STARTTLS)")
	user := flag.String("user", "", "login name")
	pass := flag.String("pass", "", "password")
	caFile := flag.String("ca", "", "PEM file of the CA to trust (empty: the system's)")
	folder := flag.String("folder", "INBOX", "folder to download")
	out := flag.String("out", "", "folder for the .eml files")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("imapbare: ")
	if *out == "" {
		log.Fatal("-out is required")
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		log.Fatal(err)
	}
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			log.Fatal(err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			log.Fatalf("%s: no certificate", *caFile)
		}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	c, err := imapclient.DialStartTLS(*addr, &imapclient.Options{TLSConfig: cfg})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(*user, *pass).Wait(); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Select(*folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		log.Fatal(err)
	}
	n, size, err := fetchAll(c, *out)
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Logout().Wait(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d messages, %d bytes\n", n, size)
}

// fetchAll streams every message of the selected folder into dir.
func fetchAll(c *imapclient.Client, dir string) (n int, size int64, err error) {
	cmd := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
		UID:         true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	})
	defer cmd.Close()
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		name := "seq-" + strconv.FormatUint(uint64(msg.SeqNum), 10) // until the UID item is seen
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch item := item.(type) {
			case imapclient.FetchItemDataUID:
				name = strconv.FormatUint(uint64(item.UID), 10)
			case imapclient.FetchItemDataBodySection:
				m, err := save(filepath.Join(dir, name+".eml"), item.Literal)
				if err != nil {
					return n, size, err
				}
				n++
				size += m
			}
		}
	}
	return n, size, cmd.Close()
}

func save(path string, r io.Reader) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	m, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return m, err
}
